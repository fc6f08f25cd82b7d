"""Procedural try-on images: a parametric front-view figure wearing a real product image.

No data set pairs body measurements with photos, so the try-on cVAE learns from these renders.
Everything is drawn at one fixed scale (``PX_PER_CM``), so a taller body is a taller figure and
every width on the canvas converts back to centimetres. The body is flat ``SKIN_RGB`` on a white
background; the garment is the product image cut out by its distance from white, stretched to
its size-chart dimensions and pasted over the body, so a small size on a big body leaves skin
showing at the sides (tight) and a big size on a small body sticks out (loose).

``measure_widths`` reads widths back from any image by colour alone, so the evaluation can
measure the renderer's image and the cVAE's image with the same ruler. See docs/tryon_renderer.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from serving_contract.sizing import NUM_SIZES, SIZE_CHART
from serving_contract.taxonomy import CATEGORIES
from serving_contract.tensors import TRYON_IMAGE_SIZE

#: canvas pixels per body centimetre, the same for everybody (a 205 cm body is 60 px tall)
PX_PER_CM = 60.0 / 205.0

#: the floor: the soles of the feet touch this y (canvas rows are ``[y, y + 1)``)
FLOOR_Y = 62.0

#: the body's vertical centre line (between columns 31 and 32)
CENTRE_X = TRYON_IMAGE_SIZE / 2

#: front width of a body or garment as a fraction of its circumference (an ellipse about 0.6 as
#: deep as it is wide); the same for body and garment, so equal girths give equal widths
CIRCUMFERENCE_TO_WIDTH = 1.0 / 2.9

#: background, as in the product images
BACKGROUND_RGB = (255, 255, 255)

#: flat skin tone; its blend line with white stays >= 30 RGB units from every shaded palette colour
SKIN_RGB = (230, 180, 150)

#: worn garments are lit this much darker than the catalog shot, so white garments stay visible
GARMENT_SHADE = 0.85

#: body landmarks, as fractions of the height below the crown
PROPORTIONS = {
    "chin": 0.13,
    "shoulder": 0.175,
    "chest": 0.30,
    "waist": 0.38,
    "hips": 0.48,
    "crotch": 0.52,
    "knee": 0.73,
    "ankle": 0.955,
}

#: the rows ``measure_widths`` reads, and the body girth each one shows
LANDMARKS = ("chest", "waist", "hips")

#: bounding-box width of the product image over the garment's chest width (sleeves stick out)
SLEEVE_SPREAD = {0: 1.6, 2: 1.6, 3: 1.3, 4: 1.6, 6: 1.6}

#: trouser bounding-box width over the waistband width (the hips are wider than the waist)
TROUSER_HIP_EASE = 1.2

#: categories whose sleeves reach the wrist: the arms are drawn inside the sleeves
LONG_SLEEVES = frozenset({2, 4, 6})

#: categories measured by top length (the rest of the tops use the dress length)
TOP_LENGTH = frozenset({0, 2, 6})

#: the one category anchored at the waist and sized by waist and inseam
TROUSER = 1

#: arm angles from the vertical (radians) the renderer may pick from
ARM_ANGLES = np.arange(0.08, 1.1, 0.02)

#: clear background between a bare arm and the torso (or garment) at the landmark rows
ARM_GAP_PX = 3.0

#: supersampling of the body drawing (anti-aliasing by box downsampling)
SUPERSAMPLE = 4

#: a product pixel's alpha ramps up between these fractions of the garment's median ink
#: (ink: 255 minus its darkest channel), so faint specks vanish and white garments stay whole
ALPHA_RAMP = (0.15, 0.5)

#: colour distance from the background above which a pixel is foreground
FOREGROUND_INK = 30.0

#: foreground pixels this far from the skin-to-background line are garment
OFF_SKIN = 16.0

#: interior pixels fainter than this join two shapes too weakly to measure reliably
BRIDGE_INK = 60.0

#: gap pixels fainter than this are clean background
CLEAR_INK = 8.0

_BG = np.asarray(BACKGROUND_RGB, np.float32)
_SKIN = np.asarray(SKIN_RGB, np.float32)
_CENTRE_COLUMNS = (int(CENTRE_X) - 1, int(CENTRE_X))
_CANVAS = TRYON_IMAGE_SIZE
_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


@dataclass(frozen=True)
class Figure:
    """One body on the canvas: ``y`` in pixels down from the top, half-widths from the centre line."""

    height: float
    top: float
    y: dict[str, float]  #: landmark heights (``PROPORTIONS``)
    rows: dict[str, int]  #: the canvas row of each of ``LANDMARKS``
    half: dict[str, float]  #: half front width at each of ``LANDMARKS``
    shoulder_half: float
    arm_width: float
    wrist_width: float
    arm_length: float  #: shoulder joint to wrist


def px_to_cm(px: float) -> float:
    """Convert a canvas length back to body centimetres."""
    return px / PX_PER_CM


def girth_to_px(circumference_cm: float) -> float:
    """Front width in pixels of a body or garment with this circumference."""
    return circumference_cm * CIRCUMFERENCE_TO_WIDTH * PX_PER_CM


def figure(measurements: np.ndarray) -> Figure:
    """The body geometry of ``[height, weight, chest, waist, hips]`` on the canvas."""
    height_cm, weight, *girths = (float(v) for v in measurements)
    height = height_cm * PX_PER_CM
    top = FLOOR_Y - height
    y = {name: top + fraction * height for name, fraction in PROPORTIONS.items()}
    half = {name: girth_to_px(cm) / 2 for name, cm in zip(LANDMARKS, girths, strict=True)}
    arm_width = (7.0 + 0.05 * weight) * PX_PER_CM
    return Figure(
        height=height,
        top=top,
        y=y,
        rows={name: int(y[name]) for name in LANDMARKS},
        half=half,
        shoulder_half=max(1.15 * half["chest"], 0.115 * height),
        arm_width=arm_width,
        wrist_width=max(1.2, 0.55 * arm_width),
        arm_length=0.34 * height - arm_width / 2,
    )


def landmark_rows(measurements: np.ndarray) -> dict[str, int]:
    """Canvas rows of the chest, waist and hips, plus crown, shoulder, crotch and the floor row."""
    body = figure(measurements)
    extra = {name: int(body.y[name]) for name in ("shoulder", "crotch")}
    return {**body.rows, **extra, "crown": int(body.top), "floor": int(FLOOR_Y) - 1}


def garment_box(measurements: np.ndarray, category: int, size: int) -> tuple[float, float, float, float]:
    """Where the garment's bounding box lands on the canvas: ``(left, top, right, bottom)`` in px."""
    _check_wearable(category)
    if not 0 <= size < NUM_SIZES:
        raise ValueError(f"size {size} is not a size chart index in [0, {NUM_SIZES})")
    body = figure(measurements)
    chart = SIZE_CHART[size]
    if category == TROUSER:
        width = girth_to_px(chart.waist_cm) * TROUSER_HIP_EASE
        top = body.rows["waist"] - 0.5  # the waistband covers the whole waist row
        bottom = body.y["crotch"] + chart.inseam_cm * PX_PER_CM
    else:
        width = girth_to_px(chart.chest_cm) * SLEEVE_SPREAD[category]
        length = chart.top_length_cm if category in TOP_LENGTH else chart.dress_length_cm
        top = body.y["shoulder"] - 0.8  # the collar sits at the base of the neck
        bottom = top + length * PX_PER_CM
    return CENTRE_X - width / 2, top, CENTRE_X + width / 2, bottom


def render(measurements: np.ndarray, garment: np.ndarray, category: int, size: int) -> np.ndarray:
    """The body ``measurements`` wearing ``garment`` (a product image) in chart ``size``: [64, 64, 3]."""
    box = garment_box(measurements, category, size)
    alpha, ink = _garment_layers(garment, box)
    body = figure(measurements)
    torso = _body_canvas(body)
    first = None
    for arms in _arm_candidates(body, category, alpha, box):
        image = _compose(_with_arms(torso, body, arms), alpha, ink)
        if not any(_ambiguous(image[row]) for row in body.rows.values()):
            return image
        first = image if first is None else first
    assert first is not None
    return first


def render_body(measurements: np.ndarray) -> np.ndarray:
    """The undressed figure (for pictures and tests)."""
    body = figure(measurements)
    empty = np.zeros((_CANVAS, _CANVAS), np.float32)
    arms = _clearing_angle(body, empty), body.arm_length
    return _compose(_with_arms(_body_canvas(body), body, arms), empty, np.zeros((_CANVAS, _CANVAS, 3)))


def render_batch(
    measurements: np.ndarray, garments: np.ndarray, categories: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """``render`` over a batch: ``[N, 5]``, ``[N, 32, 32, 3]``, ``[N]``, ``[N]`` -> ``[N, 64, 64, 3]``."""
    out = np.empty((len(measurements), _CANVAS, _CANVAS, 3), np.uint8)
    for i in range(len(measurements)):
        out[i] = render(measurements[i], garments[i], int(categories[i]), int(sizes[i]))
    return out


# --- measuring -------------------------------------------------------------------------------


def measure_widths(image: np.ndarray, rows: dict[str, int]) -> dict[str, float]:
    """Silhouette and garment widths in px at the chest, waist and hips rows, from colour alone.

    The silhouette is the run of foreground pixels through the centre line (arms off to the side
    are not part of it); the garment width is the extent of garment-coloured pixels inside that
    run (0 if none). Edges are sub-pixel: each edge pixel counts by how much of the inner colour
    it carries, so anti-aliasing and mild blur do not move the result.
    """
    widths: dict[str, float] = {}
    for name in LANDMARKS:
        line = image[rows[name]].astype(np.float32)
        ink = np.linalg.norm(_BG - line, axis=1)
        run = _centre_run(ink > FOREGROUND_INK)
        widths[f"silhouette_{name}"] = _silhouette_width(line, ink, run)
        widths[f"garment_{name}"] = _garment_width(line, ink, run)
    return widths


def _centre_run(mask: np.ndarray) -> tuple[int, int] | None:
    start = next((c for c in _CENTRE_COLUMNS if mask[c]), None)
    if start is None:
        return None
    left, right = start, start
    while left > 0 and mask[left - 1]:
        left -= 1
    while right < len(mask) - 1 and mask[right + 1]:
        right += 1
    return left, right


def _silhouette_width(line: np.ndarray, ink: np.ndarray, run: tuple[int, int] | None) -> float:
    if run is None:
        return 0.0
    left, right = run
    if right - left < 5:
        return float(right - left + 1)
    width = float(right - left - 3)
    for edge, inward in ((left, 1), (right, -1)):
        refs = np.stack([line[edge + 2 * inward], line[edge + 3 * inward], _SKIN])
        pixels = [edge - inward * k for k in _fading(ink, edge, -inward)] + [edge, edge + inward]
        width += float(_coverage(line[pixels], _BG[None], refs).sum())
    return width


def _garment_width(line: np.ndarray, ink: np.ndarray, run: tuple[int, int] | None) -> float:
    if run is None:
        return 0.0
    left, right = run
    garment = (ink > FOREGROUND_INK) & (_distance_to_skin_line(line) > OFF_SKIN)
    inside = np.flatnonzero(garment[left : right + 1]) + left
    if len(inside) == 0:
        return 0.0
    first, last = int(inside[0]), int(inside[-1])
    if last - first < 5:
        return float(last - first + 1)
    width = float(last - first - 3)
    for edge, inward in ((first, 1), (last, -1)):
        refs = np.stack([line[edge + 2 * inward], line[edge + 3 * inward]])
        pixels = [edge - inward, edge - 2 * inward, edge, edge + inward]
        pixels = [p for p in pixels if 0 <= p < len(line)]
        width += float(_coverage(line[pixels], np.stack([_BG, _SKIN]), refs).sum())
    return width


def _fading(ink: np.ndarray, edge: int, outward: int) -> list[int]:
    """How many pixels (up to 2) past ``edge`` still fade out; stops where another shape begins."""
    steps = []
    for k in (1, 2):
        p = edge + outward * k
        if not 0 <= p < len(ink) or (k == 2 and ink[p] > ink[p - outward]):
            break
        steps.append(k)
    return steps


def _coverage(pixels: np.ndarray, underlays: np.ndarray, overlays: np.ndarray) -> np.ndarray:
    """Fraction of each pixel covered by an overlay colour over an underlay, best fit over the pairs."""
    u = underlays[:, None, None, :]
    direction = overlays[None, :, None, :] - u
    offset = pixels[None, None, :, :] - u
    norm = np.maximum((direction**2).sum(-1), 1.0)
    fraction = np.clip((offset * direction).sum(-1) / norm, 0.0, 1.0)
    residual = np.linalg.norm(offset - fraction[..., None] * direction, axis=-1)
    flat_best = residual.reshape(-1, len(pixels)).argmin(axis=0)
    return fraction.reshape(-1, len(pixels))[flat_best, np.arange(len(pixels))]


def _distance_to_skin_line(line: np.ndarray) -> np.ndarray:
    direction = _BG - _SKIN
    t = np.clip(((line - _SKIN) @ direction) / (direction @ direction), 0.0, 1.0)
    return np.linalg.norm(line - (_SKIN + t[:, None] * direction), axis=1)


def ambiguous_landmarks(image: np.ndarray, rows: dict[str, int]) -> list[str]:
    """Landmarks whose row ``measure_widths`` cannot read robustly: a shape within a pixel or two of
    the centre run, or joined to it by a faint bridge, so slight blur could merge or split it.
    The renderer avoids these where it can (by moving the arms); an evaluation may skip them."""
    return [name for name in LANDMARKS if _ambiguous(image[rows[name]])]


def _ambiguous(row: np.ndarray) -> bool:
    """True when a shape nearly touches the centre run: blur could merge or split it."""
    ink = np.linalg.norm(_BG - row.astype(np.float32), axis=1)
    run = _centre_run(ink > FOREGROUND_INK)
    if run is None:
        return False
    left, right = run
    strong = ink[left : right + 1] >= BRIDGE_INK
    if strong.any():
        first, last = np.flatnonzero(strong)[[0, -1]]
        if not strong[first : last + 1].all():
            return True
    for gap in (ink[:left][::-1], ink[right + 1 :]):
        ahead = np.flatnonzero(gap > FOREGROUND_INK)
        if len(ahead) == 0:
            continue
        clear = gap[: ahead[0]] < CLEAR_INK
        if not (clear[:-1] & clear[1:]).any():
            return True
    return False


# --- drawing ---------------------------------------------------------------------------------


def _check_wearable(category: int) -> None:
    if not 0 <= category < len(CATEGORIES) or not CATEGORIES[category].wearable:
        name = CATEGORIES[category].slug if 0 <= category < len(CATEGORIES) else "unknown"
        wearable = ", ".join(f"{c.index} {c.slug}" for c in CATEGORIES if c.wearable)
        raise ValueError(f"category {category} ({name}) cannot be worn; wearable: {wearable}")


def _garment_layers(
    garment: np.ndarray, box: tuple[float, float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The garment's alpha ``[64, 64]`` and ink ``[64, 64, 3]`` (255 - colour, times alpha) on the canvas."""
    ink = 255.0 - garment.astype(np.float32)
    alpha = _product_alpha(ink.max(axis=-1))
    ys, xs = np.nonzero(alpha)
    if len(ys) == 0:
        return np.zeros((_CANVAS, _CANVAS), np.float32), np.zeros((_CANVAS, _CANVAS, 3), np.float32)
    crop = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    alpha = alpha[crop]
    ink = np.minimum(ink[crop], 255.0 * alpha[..., None])
    left, top, right, bottom = box
    along_x = _area_weights(left, right, alpha.shape[1])
    along_y = _area_weights(top, bottom, alpha.shape[0])
    along_y[int(FLOOR_Y) :] = 0.0
    layers = np.concatenate([alpha[..., None], ink], axis=-1)
    canvas = along_y @ layers.transpose(2, 0, 1) @ along_x.T
    return canvas[0], canvas[1:].transpose(1, 2, 0)


def _product_alpha(ink: np.ndarray) -> np.ndarray:
    """Alpha of a product image from its ink: a ramp relative to the garment's median ink, and at
    the outline (which blends with white) the pixel's ink over the strongest ink beside it."""
    marked = ink[ink > 2.0]
    typical = max(float(np.median(marked)), 8.0) if len(marked) else 8.0
    low, high = (fraction * typical for fraction in ALPHA_RAMP)
    alpha = np.clip((ink - low) / (high - low), 0.0, 1.0)
    padded = np.pad(ink, 1)
    shifts = [
        padded[1 + dy : 1 + dy + ink.shape[0], 1 + dx : 1 + dx + ink.shape[1]] for dy, dx in _NEIGHBOURS
    ]
    outline = (alpha > 0) & (np.minimum.reduce(shifts[:4]) <= low)
    strongest = np.maximum(np.maximum.reduce(shifts), 1.0)
    return np.where(outline, np.minimum(alpha, ink / strongest), alpha)


def _area_weights(start: float, end: float, count: int) -> np.ndarray:
    """``[64, count]``: how much of each canvas pixel each of ``count`` source pixels covers."""
    edges = np.linspace(start, end, count + 1, dtype=np.float32)
    pixels = np.arange(_CANVAS, dtype=np.float32)[:, None]
    overlap = np.minimum(pixels + 1, edges[None, 1:]) - np.maximum(pixels, edges[None, :-1])
    return np.clip(overlap, 0.0, None)


def _body_canvas(body: Figure) -> Image.Image:
    """Head, neck, torso and legs (no arms) as a supersampled coverage mask."""
    canvas = Image.new("L", (_CANVAS * SUPERSAMPLE, _CANVAS * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    y, half = body.y, body.half
    head_half_height = (y["chin"] - body.top) / 2
    _ellipse(draw, 0.0, body.top + head_half_height, 0.7 * head_half_height, head_half_height)
    neck = 0.32 * head_half_height
    _polygon(draw, [(neck, y["chin"] - 0.5), (neck, y["shoulder"] + 1.0)])
    outline = [
        (1.6 * neck, y["shoulder"]),
        (body.shoulder_half, y["shoulder"] + 1.0),
        *((half[name], body.rows[name] + 0.5) for name in LANDMARKS),
        (0.96 * half["hips"], y["crotch"]),
    ]
    _polygon(draw, outline)
    for side in (-1.0, 1.0):
        _draw_leg(draw, body, side)
    return canvas


def _draw_leg(draw: ImageDraw.ImageDraw, body: Figure, side: float) -> None:
    hips, y = body.half["hips"], body.y
    knee_x, knee_half = 0.5 * hips, 0.28 * hips
    ankle_x, ankle_half = 0.45 * hips + 0.3, max(0.55, 0.14 * hips)
    sole = FLOOR_Y - 0.6
    points = [
        (0.0, y["crotch"] - 0.5),
        (0.96 * hips, y["crotch"] - 0.5),
        (knee_x + knee_half, y["knee"]),
        (ankle_x + ankle_half, y["ankle"]),
        (ankle_x + ankle_half, sole),
        (ankle_x - ankle_half, sole),
        (ankle_x - ankle_half, y["ankle"]),
        (knee_x - knee_half, y["knee"]),
    ]
    _polygon(draw, [(side * x, v) for x, v in points], mirror=False)
    foot = 0.025 * body.height
    _ellipse(draw, side * (ankle_x + 0.5 * foot), sole, foot, 0.6)


def _arm_candidates(
    body: Figure, category: int, alpha: np.ndarray, box: tuple[float, ...]
) -> list[tuple[float, float]]:
    """(angle from vertical, length) of the arms to try, best first."""
    if category in LONG_SLEEVES:
        angle, reach = _toward_cuff(body, alpha, box)
        tucked = min(body.arm_length, reach - body.wrist_width * 1.5)
        return [(angle, body.arm_length), (angle, tucked), (angle + 0.1, tucked)]
    angle = _clearing_angle(body, alpha)
    return [(min(angle + step, ARM_ANGLES[-1]), body.arm_length) for step in (0.0, 0.1, -0.1, 0.2)]


def _shoulder_joint(body: Figure) -> tuple[float, float]:
    return body.shoulder_half + body.arm_width / 2 - 0.5, body.y["shoulder"] + body.arm_width / 2


def _toward_cuff(body: Figure, alpha: np.ndarray, box: tuple[float, ...]) -> tuple[float, float]:
    """Angle and distance from the shoulder joint to the right sleeve's cuff."""
    left, _, right, bottom = box
    cuff_x = right - 0.12 * (right - left)
    column = alpha[:, min(int(cuff_x), _CANVAS - 1)]
    covered = np.flatnonzero(column > 0.5)
    cuff_y = float(covered[-1] + 1) if len(covered) else bottom
    joint_x, joint_y = _shoulder_joint(body)
    dx, dy = cuff_x - CENTRE_X - joint_x, max(cuff_y - joint_y, 1.0)
    return float(np.clip(math.atan2(dx, dy), -0.4, 0.9)), math.hypot(dx, dy)


def _clearing_angle(body: Figure, alpha: np.ndarray) -> float:
    """The smallest arm angle that keeps the landmark rows measurable.

    At each landmark row a bare arm either leaves ``ARM_GAP_PX`` of background beside body and
    garment ("outside"), or overlaps a garment wider than the body by a pixel ("attached": a
    sleeve or a loose hem). Preferred: outside everywhere; then attached at the chest only;
    then attached anywhere; failing all, the angle farthest from a near miss.
    """
    joint_x, joint_y = _shoulder_joint(body)
    cos, tan = np.cos(ARM_ANGLES), np.tan(ARM_ANGLES)
    outside, attached, margin = {}, {}, []
    for name in LANDMARKS:
        row = body.rows[name]
        drop = row + 0.5 - joint_y
        along = drop / cos
        misses = (drop <= 0) | (along > body.arm_length + 2 * body.wrist_width)
        taper = np.clip(along / body.arm_length, 0.0, 1.0)
        width = body.arm_width + taper * (body.wrist_width - body.arm_width)
        inner = joint_x + drop * tan - width / (2 * cos)
        spread = _run_half(alpha[row])
        gap = inner - max(body.half[name], spread) - ARM_GAP_PX
        overlap = spread - 1.0 - inner if spread > body.half[name] + 0.5 else np.full_like(inner, -np.inf)
        outside[name] = misses | (gap >= 0)
        attached[name] = outside[name] | (overlap >= 0)
        margin.append(np.where(misses, np.inf, np.maximum(gap, overlap)))
    strict = outside["waist"] & outside["hips"]
    for ok in (
        strict & outside["chest"],
        strict & attached["chest"],
        np.logical_and.reduce(list(attached.values())),
    ):
        if ok.any():
            return float(ARM_ANGLES[np.argmax(ok)])
    return float(ARM_ANGLES[np.argmax(np.minimum.reduce(margin))])


def _run_half(alpha_row: np.ndarray) -> float:
    run = _centre_run(alpha_row > 0.05)
    return 0.0 if run is None else max(CENTRE_X - run[0], run[1] + 1 - CENTRE_X)


def _with_arms(torso: Image.Image, body: Figure, arms: tuple[float, float]) -> np.ndarray:
    """Add both arms to a copy of the torso mask; return the 1x coverage in [0, 1]."""
    angle, length = arms
    canvas = torso.copy()
    draw = ImageDraw.Draw(canvas)
    joint_x, joint_y = _shoulder_joint(body)
    sin, cos = math.sin(angle), math.cos(angle)
    for side in (-1.0, 1.0):
        wrist = (joint_x + length * sin, joint_y + length * cos)
        across = (cos / 2, -sin / 2)
        points = [
            (joint_x - across[0] * body.arm_width, joint_y - across[1] * body.arm_width),
            (joint_x + across[0] * body.arm_width, joint_y + across[1] * body.arm_width),
            (wrist[0] + across[0] * body.wrist_width, wrist[1] + across[1] * body.wrist_width),
            (wrist[0] - across[0] * body.wrist_width, wrist[1] - across[1] * body.wrist_width),
        ]
        _polygon(draw, [(side * x, y) for x, y in points], mirror=False)
        radius = body.arm_width / 2
        _ellipse(draw, side * joint_x, joint_y, radius, radius)
        hand = 0.75 * body.wrist_width
        _ellipse(draw, side * (wrist[0] + hand * sin), wrist[1] + hand * cos, hand, 1.3 * hand)
    return np.asarray(canvas.reduce(SUPERSAMPLE), np.float32) / 255.0


def _polygon(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], *, mirror: bool = True) -> None:
    """Fill a polygon given in (x from the centre line, y); ``mirror`` adds the left half."""
    if mirror:
        points = points + [(-x, y) for x, y in reversed(points)]
    draw.polygon([_supersampled(x, y) for x, y in points], fill=255)


def _ellipse(draw: ImageDraw.ImageDraw, x: float, y: float, half_width: float, half_height: float) -> None:
    """Fill the ellipse centred at (x from the centre line, y); PIL's box includes its last pixel."""
    left, right = ((CENTRE_X + x + d) * SUPERSAMPLE for d in (-half_width, half_width))
    top, bottom = ((y + d) * SUPERSAMPLE for d in (-half_height, half_height))
    draw.ellipse([left, top, right - 1, bottom - 1], fill=255)


def _supersampled(x: float, y: float) -> tuple[float, float]:
    """Canvas (x from the centre line, y) -> supersampled pixel coordinates.

    PIL fills pixels whose index lies between the truncated coordinates, both ends included;
    moving every point half a subpixel towards the centre line keeps widths unbiased.
    """
    inset = 0.5 if x < 0 else -0.5
    return (CENTRE_X + x) * SUPERSAMPLE + inset, y * SUPERSAMPLE


def _compose(body: np.ndarray, alpha: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """Skin over background by the body coverage, then the shaded garment over both."""
    base = _BG + body[..., None] * (_SKIN - _BG)
    a = alpha[..., None]
    out = base * (1.0 - a) + GARMENT_SHADE * (255.0 * a - ink)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
