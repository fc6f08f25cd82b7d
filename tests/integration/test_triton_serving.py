"""Both models served by the real Triton server, over gRPC, as the worker will call them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from embedded.triton import TritonServer, TritonStartError, backend_directory
from serving_contract.palette import NUM_COLOURS
from serving_contract.taxonomy import NUM_CATEGORIES
from serving_contract.tensors import (
    CLIENT_DTYPES,
    MODELS,
    PRODUCT_GENERATOR,
    PRODUCT_IMAGE_SIZE,
    TRYON_GENERATOR,
    TRYON_IMAGE_SIZE,
    ModelSpec,
)
from tests.integration.triton_requests import infer, products, random_products, tryons

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def client(triton: TritonServer) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(triton.grpc_url) as c:
        yield c


def test_both_models_load_and_are_ready(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    for spec in MODELS:
        assert client.is_model_ready(spec.name)
        metadata = client.get_model_metadata(spec.name)
        served = {t.name: (t.datatype, list(t.shape)) for t in metadata.inputs}
        inputs = (*spec.inputs, *spec.optional_inputs)
        assert served == {t.name: (CLIENT_DTYPES[t.dtype], [-1, *t.shape]) for t in inputs}


def test_product_batch_of_16_in_one_request_gives_16_uint8_images(
    client: grpcclient.InferenceServerClient,
) -> None:
    images = infer(client, PRODUCT_GENERATOR, random_products(16, seed=1))
    assert images.shape == (16, PRODUCT_IMAGE_SIZE, PRODUCT_IMAGE_SIZE, 3)
    assert images.dtype == np.uint8
    assert all(image.std() > 0 for image in images)  # pictures, not flat fills


def test_tryon_batch_of_16_in_one_request_gives_16_uint8_images(
    client: grpcclient.InferenceServerClient,
) -> None:
    images = infer(client, TRYON_GENERATOR, tryons(list(range(16))))
    assert images.shape == (16, TRYON_IMAGE_SIZE, TRYON_IMAGE_SIZE, 3)
    assert images.dtype == np.uint8
    assert all(image.std() > 0 for image in images)


def test_same_seed_and_condition_give_identical_bytes_alone_and_batched(
    client: grpcclient.InferenceServerClient,
) -> None:
    alone = infer(client, PRODUCT_GENERATOR, products([3], [7], [42]))
    crowd = random_products(16, seed=2)
    crowd["CATEGORY"][5], crowd["COLOUR"][5], crowd["SEED"][5] = 3, 7, 42
    batched = infer(client, PRODUCT_GENERATOR, crowd)
    again = infer(client, PRODUCT_GENERATOR, products([3], [7], [42]))
    among_three = infer(client, PRODUCT_GENERATOR, products([1, 2, 3], [0, 0, 7], [5, 6, 42]))
    assert alone.tobytes() == again.tobytes() == batched[5:6].tobytes() == among_three[2:3].tobytes()

    tryon_alone = infer(client, TRYON_GENERATOR, tryons([42], category=3))
    tryon_batched = infer(client, TRYON_GENERATOR, tryons([1, 2, 42, 4], category=3))
    assert tryon_alone.tobytes() == tryon_batched[2:3].tobytes()


def test_different_seeds_give_different_images(client: grpcclient.InferenceServerClient) -> None:
    images = infer(client, PRODUCT_GENERATOR, products([0] * 4, [3] * 4, [0, 1, 2, 3]))
    assert len({image.tobytes() for image in images}) == 4
    tryon = infer(client, TRYON_GENERATOR, tryons([0, 1, 2, 3]))
    assert len({image.tobytes() for image in tryon}) == 4


def test_concurrent_requests_are_batched_and_each_gets_its_own_images(
    client: grpcclient.InferenceServerClient,
) -> None:
    requests = [random_products(n, seed=10 + n) for n in range(1, 9)]
    expected = [infer(client, PRODUCT_GENERATOR, r) for r in requests]
    before = client.get_inference_statistics(PRODUCT_GENERATOR.name).model_stats[0]
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(lambda r: infer(client, PRODUCT_GENERATOR, r), requests))
    after = client.get_inference_statistics(PRODUCT_GENERATOR.name).model_stats[0]
    for got, want in zip(answers, expected, strict=True):
        assert got.tobytes() == want.tobytes()
    assert after.inference_count - before.inference_count == sum(len(r["SEED"]) for r in requests)
    assert after.execution_count - before.execution_count < len(requests)  # the batcher merged some


@pytest.mark.parametrize(
    ("spec", "arrays", "message"),
    [
        (PRODUCT_GENERATOR, products([12], [0], [1]), "CATEGORY[0]=12 outside [0, 10)"),
        (PRODUCT_GENERATOR, products([0, 1], [0, 12], [1, 2]), "COLOUR[1]=12 outside [0, 12)"),
        (PRODUCT_GENERATOR, products([0], [0], [-5]), "SEED[0]=-5 must be >= 0"),
        (TRYON_GENERATOR, tryons([1], category=5), "CATEGORY[0]=5 is not wearable"),
        (TRYON_GENERATOR, tryons([1], category=10), "CATEGORY[0]=10 outside [0, 10)"),
        (TRYON_GENERATOR, tryons([1], size=4), "SIZE[0]=4 outside [0, 4)"),
        (TRYON_GENERATOR, tryons([1], body=(172.0, 300.0, 96.0, 82.0, 100.0)), "MEASUREMENTS[0][1]=300.0"),
        (TRYON_GENERATOR, tryons([1], body=(172.0, 70.0, np.nan, 82.0, 100.0)), "MEASUREMENTS[0][2]=nan"),
    ],
    ids=["category", "colour", "seed", "unwearable", "tryon-category", "size", "weight", "nan"],
)
def test_invalid_request_is_refused_with_the_tensor_and_rule(
    client: grpcclient.InferenceServerClient, spec: ModelSpec, arrays: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(InferenceServerException, match=r"INVALID_ARG") as refused:
        infer(client, spec, arrays)
    assert message in refused.value.message()


def test_malformed_tensors_are_refused_by_triton(client: grpcclient.InferenceServerClient) -> None:
    wrong_shape = products([0], [0], [1])
    wrong_shape["CATEGORY"] = np.zeros((1, 2), np.int32)
    wrong_dtype = products([0], [0], [1])
    wrong_dtype["CATEGORY"] = wrong_dtype["CATEGORY"].astype(np.float32)
    missing = products([0], [0], [1])
    del missing["SEED"]
    too_big = random_products(PRODUCT_GENERATOR.max_batch_size + 1, seed=3)
    for arrays in (wrong_shape, wrong_dtype, missing, too_big):
        with pytest.raises(InferenceServerException):
            infer(client, PRODUCT_GENERATOR, arrays)


def test_bad_request_batched_with_good_ones_fails_alone_and_the_server_stays_up(
    client: grpcclient.InferenceServerClient,
) -> None:
    good = [random_products(4, seed=20 + i) for i in range(4)]
    expected = [infer(client, PRODUCT_GENERATOR, r) for r in good]
    bad = products([0, 12], [0, 0], [1, 2])

    def send(arrays: dict[str, np.ndarray]) -> np.ndarray | InferenceServerException:
        try:
            return infer(client, PRODUCT_GENERATOR, arrays)
        except InferenceServerException as error:
            return error

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(send, [good[0], good[1], bad, good[2], good[3]]))
    assert isinstance(answers[2], InferenceServerException)
    assert "CATEGORY[1]=12" in answers[2].message()
    for got, want in zip(answers[:2] + answers[3:], expected, strict=True):
        assert isinstance(got, np.ndarray) and got.tobytes() == want.tobytes()
    assert client.is_server_live() and client.is_model_ready(PRODUCT_GENERATOR.name)
    assert infer(client, TRYON_GENERATOR, tryons([1])).shape == (1, TRYON_IMAGE_SIZE, TRYON_IMAGE_SIZE, 3)


def test_backend_directory_links_the_wheel_files_for_this_python(tmp_path: Path) -> None:
    python_dir = backend_directory(tmp_path) / "python"
    names = {"libtriton_python.so", "triton_python_backend_utils.py", "triton_python_backend_stub"}
    assert {p.name for p in python_dir.iterdir()} == names
    assert all((python_dir / n).resolve().exists() for n in names)
    assert backend_directory(tmp_path) / "python" == python_dir  # idempotent


def test_server_that_cannot_load_a_model_fails_fast_with_the_log_tail(tmp_path: Path) -> None:
    (tmp_path / "repo" / "broken" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "broken" / "config.pbtxt").write_text('name: "broken"\nbackend: "no_such_backend"\n')
    started = time.monotonic()
    with pytest.raises(TritonStartError, match="exited") as failed:
        TritonServer(tmp_path / "repo", state_dir=tmp_path, ready_timeout_s=60).start()
    assert "no_such_backend" in str(failed.value)
    assert time.monotonic() - started < 30


def test_generated_product_of_category_k_is_classified_as_k(client: grpcclient.InferenceServerClient) -> None:
    """Every category in every colour, 4 seeds each, through Triton: the judge classifier (trained
    on real Fashion-MNIST only) must name the requested category far above chance (0.10)."""
    from training.cli import JUDGE_PATH
    from training.evaluate.classifier import judge_images, load_judge

    judge, _ = load_judge(JUDGE_PATH)
    categories = [k for k in range(NUM_CATEGORIES) for _ in range(NUM_COLOURS * 4)]
    colours = [c for _ in range(NUM_CATEGORIES) for c in range(NUM_COLOURS) for _ in range(4)]
    seeds = list(range(len(categories)))
    images = np.concatenate(
        [
            infer(
                client,
                PRODUCT_GENERATOR,
                products(categories[i : i + 64], colours[i : i + 64], seeds[i : i + 64]),
            )
            for i in range(0, len(categories), 64)
        ]
    )
    predicted, _ = judge_images(judge, images)
    per_category = [(predicted[np.array(categories) == k] == k).mean() for k in range(NUM_CATEGORIES)]
    assert (predicted == np.array(categories)).mean() >= 0.8, per_category
    assert min(per_category) >= 0.5, per_category
