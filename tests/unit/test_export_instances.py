"""How many instances each generated config asks for: ``product_cgan`` two (a try-on's garment
request finds one free while backfill runs on the other), the others one."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from embedded.triton import DEFAULT_REPOSITORY
from serving_contract.tensors import MODELS, PRODUCT_GENERATOR, QUALITY_JUDGE, TRYON_GENERATOR
from training.export import instance_count_of, write_config


def instances(path: Path) -> list[tuple[int, int]]:
    config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    return [(group.count, group.kind) for group in config.instance_group]


def test_product_cgan_gets_a_second_instance_and_the_other_models_one() -> None:
    assert instance_count_of(PRODUCT_GENERATOR) == 2
    assert instance_count_of(TRYON_GENERATOR) == instance_count_of(QUALITY_JUDGE) == 1


def test_the_committed_configs_ask_for_those_instances_on_the_cpu() -> None:
    cpu = model_config_pb2.ModelInstanceGroup.KIND_CPU
    for spec in MODELS:
        assert instances(DEFAULT_REPOSITORY / spec.name / "config.pbtxt") == [(instance_count_of(spec), cpu)]


def test_an_explicit_instance_count_overrides_the_default(tmp_path: Path) -> None:
    written = write_config(PRODUCT_GENERATOR, tmp_path, latent_dim=8, instance_count=1)
    assert instances(written) == [(1, model_config_pb2.ModelInstanceGroup.KIND_CPU)]
