"""Model output (uint8 HWC) to the bytes stored in S3, and back.

The same array always encodes to the same bytes: encoder parameters are fixed, and nothing
that varies (timestamps, metadata, EXIF, ICC profiles) is written. That is what makes a
redelivered job overwrite its objects with identical content, and what the "same seed, same
bytes" test relies on.

Upscaling from 32 px (products) or 64 px (try-on) to the display size uses ``LANCZOS``: at 8x
it gives smooth edges and keeps the garment's texture, where ``NEAREST`` shows the pixel grid
and ``BICUBIC`` looks slightly softer (compare with ``python -m worker.encoding OUT.png``).
"""

from __future__ import annotations

import io
from typing import Any, Literal

import numpy as np
from PIL import Image

Format = Literal["png", "webp", "jpeg"]

#: resampling filter for resizing to the display size
RESAMPLE = Image.Resampling.LANCZOS
#: resampling filter when ``decode`` shrinks a stored image back to the model's size (area average)
DOWNSAMPLE = Image.Resampling.BOX

#: content type per format
CONTENT_TYPES: dict[str, str] = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
#: file extension per format (object keys end with it)
EXTENSIONS: dict[str, str] = {"png": "png", "webp": "webp", "jpeg": "jpg"}

#: zlib's ``Z_RLE`` strategy: on upscaled model output it made PNGs within 1% of the default
#: strategy's size at a third of the CPU (2.9 vs 8.7 ms per 256 px image; bench/perf, BENCHMARKS.md)
Z_RLE = 3

#: libwebp's effort (0 fastest .. 6): on a 256 px upscaled product image, method 2 took 1.9 ms of
#: CPU where the default 4 took 4.6, for a file 1.5% larger at the same quality (Pillow 13, 2-core
#: EPYC, thread CPU time over 100 encodes)
WEBP_METHOD = 2

#: fixed encoder parameters per format (Pillow ``save`` keywords)
ENCODER_OPTIONS: dict[str, dict[str, Any]] = {
    "png": {"optimize": False, "compress_level": 6, "compress_type": Z_RLE},
    "webp": {"quality": 90, "method": WEBP_METHOD, "lossless": False, "exact": False},
    "jpeg": {"quality": 90, "optimize": False, "progressive": False, "subsampling": "4:4:4"},
}
#: what Pillow calls each format
_PIL_FORMATS = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}


def encode(image: np.ndarray, fmt: Format, size: int) -> tuple[bytes, str]:
    """``image`` (uint8 ``[H, W, 3]`` RGB) resized to ``size`` x ``size``, as ``fmt`` bytes.

    Returns ``(bytes, content_type)``. Raises ``ValueError`` for a wrong dtype, shape or format.
    """
    if fmt not in ENCODER_OPTIONS:
        raise ValueError(f"unknown image format {fmt!r}; use one of {', '.join(ENCODER_OPTIONS)}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 [H, W, 3], got {image.dtype} {list(image.shape)}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    picture = Image.fromarray(np.ascontiguousarray(image), mode="RGB")
    if picture.size != (size, size):
        picture = picture.resize((size, size), RESAMPLE)
    buffer = io.BytesIO()
    picture.save(buffer, format=_PIL_FORMATS[fmt], **ENCODER_OPTIONS[fmt])
    return buffer.getvalue(), CONTENT_TYPES[fmt]


def decode(data: bytes, *, size: int | None = None) -> np.ndarray:
    """Stored image bytes as uint8 ``[H, W, 3]`` RGB; shrunk (or grown) to ``size`` if given.

    Used to read a listing image back as a try-on garment (``size=32``). Raises ``ValueError``
    when the bytes are not an image.
    """
    try:
        with Image.open(io.BytesIO(data)) as opened:
            picture = opened.convert("RGB")
    except (OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"not a readable image: {error}") from None
    if size is not None and picture.size != (size, size):
        shrinking = size < min(picture.size)
        picture = picture.resize((size, size), DOWNSAMPLE if shrinking else RESAMPLE)
    return np.asarray(picture, dtype=np.uint8).copy()


def extension(fmt: Format) -> str:
    """The file extension objects of ``fmt`` end with (``jpeg`` -> ``jpg``)."""
    return EXTENSIONS[fmt]
