"""Conditions come from the model version (issue 16): the one vocabulary check
(``core.contracts.conditions``), the manifest registry and its resolution order
(``core.model_registry``), and the producer's refusal before anything is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.contracts.conditions import (
    MAX_ALLOWED_CHARS,
    ConditionRefused,
    ProductConditions,
    TryOnConditions,
    allowed,
    resolve_conditions,
)
from core.contracts.v1 import ListingImageRequest, TryOnRequest
from core.errors import ErrorCode, VersionRefused
from core.model_registry import (
    ManifestConflict,
    MemoryManifests,
    ModelRegistry,
    UnknownVersion,
    register_repository,
)
from producer.client import checked_conditions
from quality.category import category_check
from serving_contract.manifest import (
    Conditions,
    ModelManifest,
    PatternEntry,
    default_manifest,
    write_manifest,
)
from serving_contract.patterns import PATTERNS
from tests.catalog_fixture import CONDITIONS
from tests.examples import (
    LISTING_CONDITION_RULES,
    LISTING_EXAMPLE,
    TRYON_CONDITION_RULES,
    TRYON_EXAMPLE,
    ConditionCase,
    apply_patch,
)

V1 = default_manifest("product_cgan")
TRYON_V1 = default_manifest("tryon_cvae")


def catalog_version(version: int = 2, **conditions: Any) -> ModelManifest:
    """``product_cgan`` trained on tests/catalog_fixture.py's catalog: scarf, tee, skirt; teal, coral."""
    vocabulary = Conditions.model_validate({**CONDITIONS, **conditions})
    return default_manifest("product_cgan", version).model_copy(update={"conditions": vocabulary})


PATTERNED = catalog_version(
    3, patterns=[PatternEntry(index=p.index, name=p.name, description=p.description) for p in PATTERNS[:3]]
)


def listing(**attributes: Any) -> ListingImageRequest:
    data = {**LISTING_EXAMPLE, "attributes": {"category": "skirt", "colour": "coral", **attributes}}
    return ListingImageRequest.model_validate(data)


def registry(*manifests: ModelManifest, defaults: dict[str, int] | None = None) -> ModelRegistry:
    store = MemoryManifests()
    store.defaults.update(defaults or {})
    models = ModelRegistry(store, ttl_s=0)
    for manifest in manifests:
        models.register(manifest)
    return models


# --- the condition function: every refusal names the field, the version and what it allows ---


@pytest.mark.parametrize("case", LISTING_CONDITION_RULES[:3], ids=lambda c: c.name)
def test_a_listing_condition_version_1_does_not_know_is_refused_naming_field_version_and_values(
    case: ConditionCase,
) -> None:
    request = ListingImageRequest.model_validate(apply_patch(LISTING_EXAMPLE, case.patch))
    with pytest.raises(ConditionRefused) as caught:
        resolve_conditions(request, V1)
    refused = caught.value
    assert (refused.loc, refused.rule, refused.reason) == (case.loc, case.type, case.msg)
    assert refused.code is ErrorCode.UNKNOWN_CONDITION and not refused.retryable
    assert refused.message == f"{'.'.join(case.loc)}: {case.msg}"


@pytest.mark.parametrize("case", TRYON_CONDITION_RULES, ids=lambda c: c.name)
def test_a_tryon_garment_is_checked_against_the_tryon_version_and_the_product_version(
    case: ConditionCase,
) -> None:
    request = TryOnRequest.model_validate(apply_patch(TRYON_EXAMPLE, case.patch))
    with pytest.raises(ConditionRefused) as caught:
        resolve_conditions(request, TRYON_V1, product=V1)
    assert (caught.value.loc, caught.value.rule, caught.value.reason) == (case.loc, case.type, case.msg)


def test_the_catalog_version_knows_its_own_categories_at_its_own_indexes_and_version_1_refuses_them() -> None:
    made = resolve_conditions(listing(), catalog_version())
    assert made == ProductConditions(
        category=2, colour=1, pattern=None, colour_name="coral", pattern_name=None
    )
    with pytest.raises(
        ConditionRefused, match=r": attributes\.category: 'skirt' is not a category of product_cgan v1"
    ):
        resolve_conditions(listing(), V1)
    with pytest.raises(ConditionRefused) as caught:
        resolve_conditions(listing(category="t_shirt"), catalog_version())
    assert caught.value.message == (
        "attributes.category: 't_shirt' is not a category of product_cgan v2; allowed: scarf, tee, skirt"
    )
    with pytest.raises(ConditionRefused) as caught:
        resolve_conditions(listing(category="tee", colour="navy"), catalog_version())
    assert caught.value.message == (
        "attributes.colour: 'navy' is not a colour of product_cgan v2; allowed: teal, coral or #rrggbb"
    )


def test_hex_maps_to_the_nearest_colour_of_that_version() -> None:
    assert resolve_conditions(listing(category="dress", colour="#fa7850"), V1).colour_name == "orange"  # type: ignore[union-attr]
    on_catalog = resolve_conditions(listing(colour="#fa7850"), catalog_version())
    assert isinstance(on_catalog, ProductConditions) and (on_catalog.colour, on_catalog.colour_name) == (
        1,
        "coral",
    )
    assert resolve_conditions(listing(colour="#008080"), catalog_version()).colour_name == "teal"  # type: ignore[union-attr]
    assert resolve_conditions(listing(category="dress", colour="#c01a2c"), V1).colour == 3  # type: ignore[union-attr]


def test_a_version_with_patterns_takes_its_first_when_none_is_named_and_refuses_an_unknown_one() -> None:
    assert resolve_conditions(listing(), PATTERNED) == ProductConditions(2, 1, 0, "coral", "solid")
    named = resolve_conditions(listing(pattern="checks"), PATTERNED)
    assert isinstance(named, ProductConditions) and (named.pattern, named.pattern_name) == (2, "checks")
    with pytest.raises(ConditionRefused) as caught:
        resolve_conditions(listing(pattern="denim"), PATTERNED)
    assert caught.value.message == (
        "attributes.pattern: 'denim' is not a pattern of product_cgan v3; allowed: solid, stripes, checks"
    )


def test_a_tryon_resolves_its_size_and_the_garment_in_both_versions() -> None:
    request = TryOnRequest.model_validate(TRYON_EXAMPLE)  # a t_shirt in #c81e28, size M
    tried = resolve_conditions(request, TRYON_V1, product=V1)
    assert tried == TryOnConditions(
        size=1, garment_category=0, garment=ProductConditions(0, 3, None, "red", None)
    )


def test_a_long_vocabulary_is_cut_and_counted_so_the_message_stays_short() -> None:
    names = [f"category_{i:03d}" for i in range(200)]
    text = allowed(names)
    assert text.endswith(" more") and len(text) <= MAX_ALLOWED_CHARS + 20 and "200" not in text
    assert allowed(["a", "b"]) == "a, b" and allowed([]) == "none"


def test_a_refusal_becomes_a_validation_error_with_the_field_the_rule_and_the_message() -> None:
    refused = ConditionRefused(("attributes", "category"), "unknown_category", "'x' is not a category", "x")
    error = refused.validation_error("ListingImageRequest")
    assert [(e["loc"], e["type"], e["msg"]) for e in error.errors()] == [
        (("attributes", "category"), "unknown_category", "'x' is not a category")
    ]


# --- the registry ---


def test_a_registered_manifest_is_immutable_unless_replaced_and_version_1_falls_back_to_the_built_in() -> (
    None
):
    models = registry()
    assert models.get("product_cgan", 1) == V1 and models.get("product_cgan", 2) is None
    assert models.versions("product_cgan") == (1,)
    assert models.register(catalog_version()) is True
    assert models.register(catalog_version()) is False  # the same one again: nothing to do
    other = catalog_version(colours=[{"index": 0, "name": "mauve", "rgb": [224, 176, 255]}])
    with pytest.raises(ManifestConflict, match="versions are immutable"):
        models.register(other)
    assert models.get("product_cgan", 2) == catalog_version()
    assert models.register(other, replace=True) is True
    assert models.get("product_cgan", 2) == other and models.versions("product_cgan") == (1, 2)


def test_a_manifest_is_read_once_per_process_and_the_default_again_after_its_period() -> None:
    store = MemoryManifests()
    store.write("product_cgan", 2, catalog_version().model_dump_json(), replace=False)
    reads: list[tuple[str, int]] = []
    read = store.read

    def counted(model: str, version: int) -> str | None:
        reads.append((model, version))
        return read(model, version)

    store.read = counted  # type: ignore[method-assign]
    now = [0.0]
    models = ModelRegistry(store, ttl_s=5, clock=lambda: now[0])
    for _ in range(3):
        assert models.resolve("product_cgan", 2).version == 2
    assert reads == [("product_cgan", 2)]
    assert models.resolve("product_cgan", None).version == 2  # no default: the highest
    store.defaults["product_cgan"] = 1
    assert models.resolve("product_cgan", None).version == 2  # the default is cached for 5 s
    now[0] = 5.0
    assert models.resolve("product_cgan", None).version == 1


def test_resolution_is_pinned_then_default_then_the_worker_setting_then_the_highest_then_1() -> None:
    assert registry().resolve("product_cgan", None) == V1
    models = registry(catalog_version(), PATTERNED)
    assert models.resolve("product_cgan", None).version == 3  # the highest registered
    assert models.resolve("product_cgan", None, fallback=2).version == 2  # the worker's setting
    assert models.resolve("product_cgan", 1).version == 1  # pinned
    with_default = registry(catalog_version(), PATTERNED, defaults={"product_cgan": 2})
    assert with_default.resolve("product_cgan", None, fallback=3).version == 2
    assert with_default.resolve("product_cgan", 3).version == 3


def test_a_version_without_a_manifest_is_unknown_naming_the_versions_there_are() -> None:
    models = registry(catalog_version(), defaults={"tryon_cvae": 7})
    with pytest.raises(UnknownVersion) as caught:
        models.resolve("product_cgan", 9)
    assert caught.value.message == "product_cgan has no version 9; its versions: 1, 2"
    assert caught.value.code is ErrorCode.MODEL_NOT_FOUND
    with pytest.raises(UnknownVersion, match=r"tryon_cvae's default version 7 has no registered manifest"):
        models.resolve("tryon_cvae", None)


# --- the producer's check: refused before anything is stored ---


def test_the_submit_check_stores_hex_as_the_version_s_colour_name_and_refuses_with_a_validation_error() -> (
    None
):
    models = registry(catalog_version())
    pinned = listing(colour="#fa7850").model_copy(update={"model_version": 2})
    assert checked_conditions(pinned, models).attributes.colour == "coral"  # type: ignore[union-attr]
    with pytest.raises(ValidationError) as caught:
        checked_conditions(listing().model_copy(update={"model_version": 1}), models)
    [error] = caught.value.errors()
    assert error["loc"] == ("attributes", "category") and error["type"] == "unknown_category"
    assert error["msg"].startswith("'skirt' is not a category of product_cgan v1; allowed: t_shirt, trouser")
    with pytest.raises(ValidationError) as caught:
        checked_conditions(listing().model_copy(update={"model_version": 5}), models)
    assert [(e["loc"], e["type"], e["msg"]) for e in caught.value.errors()] == [
        (("model_version",), "unknown_model_version", "product_cgan has no version 5; its versions: 1, 2")
    ]
    tryon = TryOnRequest.model_validate(TRYON_EXAMPLE)  # a t_shirt, made by the product version
    with pytest.raises(
        ValidationError, match="'t_shirt' is not a category of product_cgan v2; allowed: scarf"
    ):
        checked_conditions(tryon, models)  # no default: the highest registered, 2, would make it
    on_v1 = registry(catalog_version(), defaults={"product_cgan": 1})
    assert checked_conditions(tryon, on_v1).garment.colour == "red"  # type: ignore[union-attr]


def test_a_category_the_judge_does_not_know_is_recorded_as_not_judged_and_does_not_fail() -> None:
    check = category_check([0.1] * 10, None, min_probability=0.2)  # type: ignore[arg-type]
    assert check.passed and not check.judged and check.name == "category"


def test_registering_a_repository_takes_every_version_s_manifest_and_refuses_a_changed_one(
    tmp_path: Path,
) -> None:
    repository = tmp_path / "repository"
    write_manifest(repository / "product_cgan" / "1", V1)
    write_manifest(repository / "product_cgan" / "2", catalog_version())
    (repository / "product_cgan" / "notes").mkdir()  # not a version folder
    models = registry()
    done = register_repository(models, repository)
    assert [(r.model, r.version, r.stored) for r in done] == [
        ("product_cgan", 1, True),
        ("product_cgan", 2, True),
    ]
    assert [r.stored for r in register_repository(models, repository)] == [False, False]
    write_manifest(repository / "product_cgan" / "2", PATTERNED.model_copy(update={"version": 2}))
    with pytest.raises(ManifestConflict, match="product_cgan version 2 is registered with another manifest"):
        register_repository(models, repository)
    (repository / "product_cgan" / "2" / "manifest.json").write_text("{}")
    with pytest.raises(VersionRefused, match="not a valid manifest"):
        register_repository(models, repository)
