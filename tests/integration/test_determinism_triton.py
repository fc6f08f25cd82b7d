"""The seed contract through the real Triton server, on the default kernel path and on forced ones:
an item's bytes are the same alone, inside a large request, and merged by the dynamic batcher
with other clients' requests at whatever position (docs/determinism.md)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from bench.determinism.paths import CI_PATHS, KERNEL_PATHS
from embedded.triton import TritonServer
from serving_contract.tensors import PRODUCT_GENERATOR, TRYON_GENERATOR, ModelSpec
from tests.integration.triton_requests import infer, products, tryons

pytestmark = [pytest.mark.triton, pytest.mark.slow]

#: distinct items per model
ITEMS = 24


@pytest.fixture(scope="module", params=["default", *CI_PATHS[:2]])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A Triton server of its own with the kernel path forced, and a client to it."""
    state = tmp_path_factory.mktemp("triton-determinism")
    with (
        TritonServer(state_dir=state, extra_env=KERNEL_PATHS[request.param]) as server,
        grpcclient.InferenceServerClient(server.grpc_url) as client,
    ):
        yield client


def items(spec: ModelSpec, indices: list[int]) -> dict[str, np.ndarray]:
    """The requests of items ``indices``: each its own seed, and its own category or size."""
    seeds = [9000 + 131 * i for i in indices]
    if spec is PRODUCT_GENERATOR:
        return products([i % 10 for i in indices], [i % 12 for i in indices], seeds)
    batch = tryons(seeds, category=3)
    batch["SIZE"][:, 0] = [i % 4 for i in indices]
    batch["MEASUREMENTS"][:, 0] += np.asarray(indices, np.float32) % 13
    return batch


@pytest.mark.parametrize("spec", [PRODUCT_GENERATOR, TRYON_GENERATOR], ids=lambda s: s.name)
def test_an_item_has_the_same_bytes_alone_in_a_large_request_and_batched_with_others(
    client: grpcclient.InferenceServerClient, spec: ModelSpec
) -> None:
    alone = [infer(client, spec, items(spec, [i]))[0] for i in range(ITEMS)]

    one_request = infer(client, spec, items(spec, list(range(ITEMS))))
    for i in range(ITEMS):
        assert one_request[i].tobytes() == alone[i].tobytes(), f"item {i} in one request of {ITEMS}"

    # many clients at once: the dynamic batcher merges their requests in arrival order
    groups = [list(range(start, start + 1 + k % 3)) for k, start in enumerate(range(0, ITEMS, 3))]
    random.Random(5).shuffle(groups)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda group: infer(client, spec, items(spec, group)), groups * 3))
    for group, images in zip(groups * 3, answers, strict=True):
        for item, image in zip(group, images, strict=True):
            assert image.tobytes() == alone[item].tobytes(), f"item {item} batched with others"
    stats = client.get_inference_statistics(spec.name).model_stats[0]
    assert stats.execution_count < stats.inference_count  # the batcher did merge requests
