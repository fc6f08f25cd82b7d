"""A request's conditions as the indexes of the model version it runs on: the one vocabulary check.

Why one function: the submit (``producer.client.Producer.prepare``, which the API, the batch route
and the asyncio path all call) and the worker (``worker.pipeline``) must agree on what a version
knows, and a version trained on another catalog has other categories at other indexes. The
request contract (``core.contracts.v1``) checks only the shape of a slug or a colour;
:func:`resolve_conditions` checks the values against a version's manifest and raises
:class:`ConditionRefused`, which names the field, the version and the allowed values.

Rules: ``category`` is a slug of the version's categories; ``colour`` a colour name of the
version's, or ``#rrggbb`` mapped to the nearest of *that version's* colours (CIELAB);
``pattern`` a pattern name of the version's, the version's first pattern when the request names
none, and refused by a version without patterns. A try-on's garment by attributes must be a
wearable category of the try-on model's version and a category and colour of the product
model's version (which makes it first).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.contracts.bounds import quoted
from core.contracts.codes import ErrorCode
from core.contracts.v1 import GarmentByAttributes, ListingAttributes, ListingImageRequest, TryOnRequest
from core.errors import PermanentError
from serving_contract.manifest import ColourEntry, ModelManifest
from serving_contract.palette import srgb_to_lab

#: the longest list of allowed values a refusal spells out (the rest are counted), so that a
#: catalog of hundreds of categories keeps the message within ``bounds.MAX_MESSAGE_CHARS``
MAX_ALLOWED_CHARS: Final = 120
_HEX = re.compile(r"#[0-9a-fA-F]{6}")


class ConditionRefused(PermanentError):
    """A condition the model version does not know (code ``unknown_condition``).

    ``loc``: the field's path (``("attributes", "category")``); ``rule``: the error type
    (``unknown_category``, ``unknown_colour``, ``unknown_pattern``, ``no_patterns``,
    ``not_wearable``); ``reason``: the message without the path; ``value``: what was refused.
    """

    def __init__(self, loc: tuple[str, ...], rule: str, reason: str, value: Any) -> None:
        super().__init__(ErrorCode.UNKNOWN_CONDITION, f"{'.'.join(loc)}: {reason}")
        self.loc, self.rule, self.reason, self.value = loc, rule, reason, value

    def validation_error(self, title: str, *, kind: str | None = None) -> ValidationError:
        """The refusal as pydantic's ``ValidationError``, as every other invalid field is refused
        (the API answers it 422 with the field, the CLI prints it); ``kind`` first in the path
        when given (as ``parse_request``'s errors of a tagged request have it)."""
        detail: InitErrorDetails = {
            # without a context pydantic keeps the message as it is (no placeholders filled)
            "type": PydanticCustomError(self.rule, self.reason),
            "loc": self.loc if kind is None else (kind, *self.loc),
            "input": self.value,
        }
        return ValidationError.from_exception_data(title, [detail])


@dataclass(frozen=True)
class Vocabulary:
    """A version's names -> indexes, built once per manifest: a check is a dict lookup."""

    categories: dict[str, int]
    colours: dict[str, int]
    patterns: dict[str, int]
    sizes: dict[str, int]
    wearable: dict[str, int]


#: manifest id -> (the manifest, kept alive so the id stays its own; its vocabulary)
_VOCABULARIES: dict[int, tuple[ModelManifest, Vocabulary]] = {}
#: vocabularies kept before the cache starts again (a process sees a handful of versions)
MAX_VOCABULARIES: Final = 256


def vocabulary(manifest: ModelManifest) -> Vocabulary:
    """``manifest``'s :class:`Vocabulary`, cached per manifest object."""
    hit = _VOCABULARIES.get(id(manifest))
    if hit is not None and hit[0] is manifest:
        return hit[1]
    c = manifest.conditions
    built = Vocabulary(
        categories={e.slug: e.index for e in c.categories},
        colours={e.name: e.index for e in c.colours},
        patterns={e.name: e.index for e in c.patterns},
        sizes={e.label: e.index for e in c.sizes},
        wearable={e.slug: e.index for e in c.categories if e.wearable},
    )
    if len(_VOCABULARIES) >= MAX_VOCABULARIES:
        _VOCABULARIES.clear()
    _VOCABULARIES[id(manifest)] = (manifest, built)
    return built


@dataclass(frozen=True)
class ProductConditions:
    """What ``product_cgan`` receives for one request: indexes, and the names they stand for."""

    category: int
    colour: int
    #: ``None``: the version has no patterns (no ``PATTERN`` input is sent)
    pattern: int | None
    colour_name: str
    pattern_name: str | None


@dataclass(frozen=True)
class TryOnConditions:
    """What ``tryon_cvae`` receives: the size index and, for a garment by attributes, its category
    index in the try-on version and what the product version makes it from (a garment from a
    listing is known only when the job runs: ``None`` both)."""

    size: int
    garment_category: int | None
    garment: ProductConditions | None


def resolve_conditions(
    request: ListingImageRequest | TryOnRequest,
    manifest: ModelManifest,
    *,
    product: ModelManifest | None = None,
) -> ProductConditions | TryOnConditions:
    """``request``'s conditions as indexes of ``manifest``'s version (``product_cgan``'s for a
    listing, ``tryon_cvae``'s for a try-on; a try-on's garment by attributes also needs
    ``product``, the product model version that makes it). Raises :class:`ConditionRefused`."""
    if isinstance(request, ListingImageRequest):
        return listing_conditions(request.attributes, manifest)
    return tryon_conditions(request, manifest, product=product)


def listing_conditions(
    attributes: ListingAttributes | GarmentByAttributes,
    manifest: ModelManifest,
    *,
    at: tuple[str, ...] = ("attributes",),
) -> ProductConditions:
    """Category, colour and pattern of a listing (or a garment by attributes, ``at`` its path)."""
    words = vocabulary(manifest)
    category = _lookup((*at, "category"), "category", attributes.category, words.categories, manifest)
    colour = _colour((*at, "colour"), attributes.colour, words.colours, manifest)
    requested = getattr(attributes, "pattern", None)
    pattern: int | None = None
    if words.patterns:
        pattern = (
            0
            if requested is None
            else _lookup((*at, "pattern"), "pattern", requested, words.patterns, manifest)
        )
    elif requested is not None:
        raise ConditionRefused(
            (*at, "pattern"), "no_patterns", f"{_version(manifest)} has no patterns", requested
        )
    conditions = manifest.conditions
    return ProductConditions(
        category=category,
        colour=colour,
        pattern=pattern,
        colour_name=conditions.colours[colour].name,
        pattern_name=None if pattern is None else conditions.patterns[pattern].name,
    )


def tryon_conditions(
    request: TryOnRequest, manifest: ModelManifest, *, product: ModelManifest | None
) -> TryOnConditions:
    """Size and garment of a try-on in ``manifest``'s (``tryon_cvae``) version; the garment's
    product conditions only with ``product`` (else ``garment`` is ``None``)."""
    size = _lookup(("size",), "size", request.size, vocabulary(manifest).sizes, manifest)
    garment = request.garment
    if not isinstance(garment, GarmentByAttributes):
        return TryOnConditions(size=size, garment_category=None, garment=None)
    category = wearable_category(garment.category, manifest, at=("garment", "category"))
    made = None if product is None else listing_conditions(garment, product, at=("garment",))
    return TryOnConditions(size=size, garment_category=category, garment=made)


def wearable_category(slug: str, manifest: ModelManifest, *, at: tuple[str, ...]) -> int:
    """``slug``'s index in the try-on version ``manifest`` if it can be worn there, else
    :class:`ConditionRefused` (``not_wearable``) listing the wearable categories."""
    words = vocabulary(manifest)
    index = words.wearable.get(slug)
    if index is not None:
        return index
    wearable = allowed(tuple(words.wearable))
    known = slug in words.categories
    what = "cannot be tried on by" if known else "is not a category of"
    reason = f"{quoted(slug)} {what} {_version(manifest)}; wearable categories: {wearable}"
    raise ConditionRefused(at, "not_wearable", reason, slug)


def allowed(names: Sequence[str]) -> str:
    """``names`` joined by commas, cut after :data:`MAX_ALLOWED_CHARS` with the count of the rest."""
    shown: list[str] = []
    length = 0
    for name in names:
        length += len(name) + 2
        if length > MAX_ALLOWED_CHARS and shown:
            return ", ".join(shown) + f" and {len(names) - len(shown)} more"
        shown.append(name)
    return ", ".join(shown) or "none"


def _version(manifest: ModelManifest) -> str:
    return f"{manifest.model} v{manifest.version}"


def _lookup(
    loc: tuple[str, ...], what: str, value: str, names: dict[str, int], manifest: ModelManifest
) -> int:
    """The index of ``value`` in a vocabulary (names in index order), or the refusal."""
    index = names.get(value)
    if index is not None:
        return index
    if not names:
        raise ConditionRefused(loc, f"no_{what}s", f"{_version(manifest)} has no {what}s", value)
    suffix = " or #rrggbb" if what == "colour" else ""
    reason = (
        f"{quoted(value)} is not a {what} of {_version(manifest)}; allowed: {allowed(tuple(names))}{suffix}"
    )
    raise ConditionRefused(loc, f"unknown_{what}", reason, value)


def _colour(loc: tuple[str, ...], value: str, names: dict[str, int], manifest: ModelManifest) -> int:
    """A colour name of the version, or ``#rrggbb`` as the nearest of its colours (CIELAB)."""
    if names and _HEX.fullmatch(value):
        return nearest(value, manifest.conditions.colours)
    return _lookup(loc, "colour", value, names, manifest)


def nearest(hex_colour: str, colours: Sequence[ColourEntry]) -> int:
    """The index of the colour of ``colours`` nearest ``#rrggbb`` in CIELAB."""
    rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    target = srgb_to_lab(np.asarray(rgb, np.float64))
    references = srgb_to_lab(np.asarray([c.rgb for c in colours], np.float64))
    return int(np.argmin(np.linalg.norm(references - target, axis=1)))
