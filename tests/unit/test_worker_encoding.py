"""worker.encoding: display-size images in three formats, byte for byte reproducible."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from worker.encoding import CONTENT_TYPES, decode, encode, extension


def product_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["png", "webp", "jpeg"])
def test_same_image_encodes_to_identical_bytes(fmt: str) -> None:
    first, content_type = encode(product_image(), fmt, 256)  # type: ignore[arg-type]
    second, _ = encode(product_image().copy(), fmt, 256)  # type: ignore[arg-type]
    assert first == second
    assert content_type == CONTENT_TYPES[fmt]


@pytest.mark.parametrize(("fmt", "pil_format"), [("png", "PNG"), ("webp", "WEBP"), ("jpeg", "JPEG")])
def test_encoded_image_has_the_display_size_and_format(fmt: str, pil_format: str) -> None:
    data, _ = encode(product_image(), fmt, 256)  # type: ignore[arg-type]
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == pil_format
        assert image.size == (256, 256)
        assert image.mode == "RGB"
        assert "exif" not in image.info and "icc_profile" not in image.info


def test_different_images_encode_differently() -> None:
    assert encode(product_image(1), "png", 64)[0] != encode(product_image(2), "png", 64)[0]


def test_png_round_trip_at_native_size_is_exact() -> None:
    image = product_image()
    assert np.array_equal(decode(encode(image, "png", 32)[0]), image)


def test_decode_shrinks_a_stored_listing_image_back_to_the_garment_size() -> None:
    garment = np.full((32, 32, 3), 255, np.uint8)
    garment[8:24, 10:22] = (20, 30, 120)
    stored, _ = encode(garment, "jpeg", 256)
    back = decode(stored, size=32)
    assert back.shape == (32, 32, 3) and back.dtype == np.uint8
    assert np.abs(back.astype(int) - garment.astype(int)).mean() < 6


def test_bad_inputs_are_refused_with_the_rule() -> None:
    with pytest.raises(ValueError, match="unknown image format 'gif'"):
        encode(product_image(), "gif", 64)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expected uint8 \[H, W, 3\]"):
        encode(product_image().astype(np.float32), "png", 64)
    with pytest.raises(ValueError, match="not a readable image"):
        decode(b"not an image")


def test_jpeg_objects_end_in_jpg() -> None:
    assert [extension("png"), extension("webp"), extension("jpeg")] == ["png", "webp", "jpg"]
