"""``api.pages.tryon_form``: what the try-on page checks in the browser is what the contract
checks on the server (``core.contracts.v1.BodyMeasurements``), at the very edges of each range;
the browser itself runs these numbers in ``tests/browser/test_try_on_page.py``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.pages.tryon_form import MeasurementField, tryon_form
from core.contracts.v1 import BodyMeasurements, GarmentByAttributes, GarmentFromListing
from serving_contract.palette import PALETTE
from serving_contract.sizing import MEASUREMENTS, SIZE_CHART

FORM = tryon_form()
FIELDS = {m.name: m for m in FORM.measurements}


def body(system: str, name: str, value: float) -> BodyMeasurements:
    """Measurements in ``system`` with ``name`` at ``value``, the others mid-range."""
    values = {}
    for field in FORM.measurements:
        shown = getattr(field, system)
        values[field.name] = (shown.shown_low + shown.shown_high) / 2
    return BodyMeasurements.model_validate({"unit_system": system, **values, name: value})


def accepted(system: str, name: str, value: float) -> bool:
    try:
        body(system, name, value)
    except ValidationError:
        return False
    return True


def browser_accepts(field: MeasurementField, system: str, value: float) -> bool:
    """The page's check (``static/try-on.js``): ``low <= value * factor <= high``."""
    return field.low <= value * getattr(field, system).factor <= field.high


@pytest.mark.parametrize("system", ["metric", "imperial"])
@pytest.mark.parametrize("name", [m.name for m in MEASUREMENTS])
def test_every_value_shown_as_allowed_is_allowed_and_just_outside_is_refused(system: str, name: str) -> None:
    field = FIELDS[name]
    shown = getattr(field, system)
    for value in (shown.shown_low, shown.shown_high):
        assert accepted(system, name, value) and browser_accepts(field, system, value)
    for value in (shown.shown_low - 0.1, shown.shown_high + 0.1):
        assert not accepted(system, name, value) and not browser_accepts(field, system, value)


@pytest.mark.parametrize("name", [m.name for m in MEASUREMENTS])
def test_the_browser_and_the_server_agree_at_the_exact_imperial_edges(name: str) -> None:
    field = FIELDS[name]
    factor = field.imperial.factor
    for edge in (field.low / factor, field.high / factor):
        for value in (edge - 1e-9, edge, edge + 1e-9, round(edge, 1), round(edge, 2)):
            assert browser_accepts(field, "imperial", value) == accepted("imperial", name, value), value


def test_the_ranges_and_factors_are_the_contracts() -> None:
    assert [(m.name, m.low, m.high, m.metric.unit) for m in FORM.measurements] == [
        (m.name, m.low, m.high, m.unit) for m in MEASUREMENTS
    ]
    for field in FORM.measurements:
        converted = body("imperial", field.name, field.imperial.shown_low).metric()[field.name]
        assert converted == pytest.approx(field.imperial.shown_low * field.imperial.factor)
        assert field.imperial.unit == {"cm": "in", "kg": "lb"}[field.metric.unit]


def test_the_garment_choices_are_those_the_contract_takes() -> None:
    for category in FORM.categories:
        GarmentByAttributes(category=category.value, colour=FORM.colours[0].name)
    assert [c.name for c in FORM.colours] == [c.name for c in PALETTE]
    assert FORM.sizes == tuple(s.label for s in SIZE_CHART)
    GarmentFromListing(job_id="a" * 32, variant=FORM.variant_max)
    with pytest.raises(ValidationError):
        GarmentFromListing(job_id="a" * 32, variant=FORM.variant_max + 1)
