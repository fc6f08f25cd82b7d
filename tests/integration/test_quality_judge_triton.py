"""``quality_judge`` served by the real Triton server: it judges what ``product_cgan`` answers, as
the committed backend does in-process, and an image's scores do not depend on its batch."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from bench.backends import load_backend
from bench.gate.designs import judge
from embedded.triton import TritonServer
from serving_contract.tensors import JUDGE_FEATURE_DIM, PRODUCT_GENERATOR
from tests.integration.triton_requests import infer, products

pytestmark = [
    pytest.mark.triton,
    pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning"),
]

#: images judged
ITEMS = 20


@pytest.fixture(scope="module")
def client(triton: TritonServer) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(triton.grpc_url) as c:
        yield c


@pytest.fixture(scope="module")
def generated(client: grpcclient.InferenceServerClient) -> tuple[np.ndarray, list[int]]:
    categories = [i % 10 for i in range(ITEMS)]
    seeds = [300 + 17 * i for i in range(ITEMS)]
    return infer(
        client, PRODUCT_GENERATOR, products(categories, [i % 12 for i in range(ITEMS)], seeds)
    ), categories


def test_the_judge_scores_generated_images_as_the_committed_backend_does(
    client: grpcclient.InferenceServerClient, generated: tuple[np.ndarray, list[int]]
) -> None:
    images, categories = generated
    probabilities, features = judge(client, images)
    assert probabilities.shape == (ITEMS, 10) and features.shape == (ITEMS, JUDGE_FEATURE_DIM)
    assert probabilities.dtype == features.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    local_probabilities, local_features = load_backend("quality_judge").forward(
        torch.from_numpy(images.copy())
    )
    np.testing.assert_allclose(probabilities, local_probabilities.numpy(), atol=1e-5)
    np.testing.assert_allclose(features, local_features.numpy(), atol=1e-4)
    agree = np.mean(probabilities.argmax(axis=1) == np.asarray(categories))
    assert agree >= 0.75, f"the judge agreed with {agree:.0%} of the requested categories"


def test_an_images_scores_are_the_same_alone_and_batched_with_other_clients(
    client: grpcclient.InferenceServerClient, generated: tuple[np.ndarray, list[int]]
) -> None:
    images, _ = generated
    alone = [judge(client, images[i : i + 1]) for i in range(ITEMS)]
    together = judge(client, images)
    groups = [list(range(start, min(ITEMS, start + 1 + k % 3))) for k, start in enumerate(range(0, ITEMS, 3))]
    random.Random(3).shuffle(groups)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda group: judge(client, images[group]), groups * 3))
    for i, (p, f) in enumerate(alone):
        assert p[0].tobytes() == together[0][i].tobytes() and f[0].tobytes() == together[1][i].tobytes()
    for group, (p, f) in zip(groups * 3, answers, strict=True):
        for row, item in enumerate(group):
            assert p[row].tobytes() == alone[item][0][0].tobytes(), f"image {item} batched with others"
            assert f[row].tobytes() == alone[item][1][0].tobytes()
    stats = client.get_inference_statistics("quality_judge").model_stats[0]
    assert stats.execution_count < stats.inference_count  # the batcher did merge requests
