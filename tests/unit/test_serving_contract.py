from pathlib import Path

import numpy as np
import pytest

from serving_contract import describe
from serving_contract.palette import PALETTE, colour_by_name, colourise, nearest_colour
from serving_contract.sizing import MEASUREMENTS, size_by_label
from serving_contract.taxonomy import CATEGORIES, category_by_slug

ROOT = Path(__file__).resolve().parents[2]


def test_docs_serving_contract_is_generated_from_code() -> None:
    assert (ROOT / "docs/serving_contract.md").read_text() == describe.markdown()


def test_category_indices_are_positions() -> None:
    assert [c.index for c in CATEGORIES] == list(range(len(CATEGORIES)))
    assert category_by_slug("ankle_boot").label == "Ankle boot"


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: t_shirt"):
        category_by_slug("hat")
    with pytest.raises(KeyError, match="known: black"):
        colour_by_name("teal")
    with pytest.raises(KeyError, match="known: S"):
        size_by_label("XXL")


def test_palette_colours_are_their_own_nearest_and_distinct() -> None:
    assert len({p.name for p in PALETTE}) == len(PALETTE)
    for colour in PALETTE:
        assert nearest_colour(colour.hex) == colour
    assert nearest_colour("#ff0000").name == "red"


def test_colourise_keeps_background_white_and_tints_garment() -> None:
    gray = np.zeros((4, 4), np.uint8)
    gray[1:3, 1:3] = 255
    red = colour_by_name("red")
    out = colourise(gray, red)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    assert (out[0, 0] == 255).all()
    assert tuple(out[1, 1]) == red.rgb


def test_measurement_normalisation_maps_range_to_unit_interval() -> None:
    for m in MEASUREMENTS:
        assert m.normalise(m.low) == pytest.approx(-1.0)
        assert m.normalise(m.high) == pytest.approx(1.0)
