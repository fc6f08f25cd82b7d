"""A version conditioned on patterns, served by the real Triton beside the committed version 1:
the shared config declares ``PATTERN`` optional, version 2 (a tiny run of the catalog trainer on
a catalog with three patterns) requires it and range-checks it, and version 1 refuses it and
still answers without it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from embedded.triton import TritonServer
from serving_contract.manifest import read_manifest
from serving_contract.tensors import CLIENT_DTYPES, PRODUCT_GENERATOR
from tests.catalog_versions import committed_repository, export_tiny, serve_every_version
from tests.integration.triton_requests import products

pytestmark = [
    pytest.mark.triton,
    pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    root = tmp_path_factory.mktemp("pattern-triton")
    repository = committed_repository(root / "repository")
    assert export_tiny(root, repository, patterns=True) == repository / "product_cgan" / "2"
    serve_every_version(repository)
    with TritonServer(repository, state_dir=root / "state", log_path=root / "tritonserver.log") as triton:
        yield triton


@pytest.fixture(scope="module")
def client(server: TritonServer) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(server.grpc_url) as c:
        yield c


def generate(
    client: grpcclient.InferenceServerClient, version: int, patterns: list[int] | None, seed: int = 5
) -> np.ndarray:
    """One request of ``len(patterns)`` items (category 2, colour 1), ``PATTERN`` left out if None."""
    n = 1 if patterns is None else len(patterns)
    arrays = products([2] * n, [1] * n, [seed + i for i in range(n)])
    if patterns is not None:
        arrays["PATTERN"] = np.array(patterns, np.int32)[:, None]
    inputs = []
    for name, values in arrays.items():
        tensor = grpcclient.InferInput(name, list(values.shape), CLIENT_DTYPES[values.dtype.name])
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    result = client.infer(PRODUCT_GENERATOR.name, inputs, model_version=str(version))
    images: np.ndarray = result.as_numpy("IMAGE")
    return images


def test_both_versions_load_and_the_metadata_lists_pattern(
    server: TritonServer, client: grpcclient.InferenceServerClient
) -> None:
    assert client.is_model_ready("product_cgan", "1") and client.is_model_ready("product_cgan", "2")
    served = {
        t.name: (t.datatype, list(t.shape)) for t in client.get_model_metadata("product_cgan", "2").inputs
    }
    assert served["PATTERN"] == ("INT32", [-1, 1])
    manifest = read_manifest(server.repository / "product_cgan" / "2")
    assert manifest.conditions.pattern_names() == ("solid", "stripes", "dots")


def test_the_patterned_version_answers_with_pattern_and_the_pattern_changes_the_image(
    client: grpcclient.InferenceServerClient,
) -> None:
    images = generate(client, 2, [0, 1, 2])
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    plain, dotted = generate(client, 2, [0])[0], generate(client, 2, [2])[0]  # same seed, category, colour
    assert np.array_equal(plain, images[0]) and not np.array_equal(plain, dotted)


def test_the_patterned_version_refuses_a_pattern_out_of_range_and_a_missing_one(
    client: grpcclient.InferenceServerClient,
) -> None:
    with pytest.raises(InferenceServerException, match=r"PATTERN\[1\]=3 outside \[0, 3\)"):
        generate(client, 2, [0, 3])
    with pytest.raises(
        InferenceServerException, match=r"PATTERN missing: product_cgan v2 requires one per item"
    ):
        generate(client, 2, None)


def test_version_1_refuses_pattern_and_still_answers_without_it(
    client: grpcclient.InferenceServerClient,
) -> None:
    with pytest.raises(InferenceServerException, match="product_cgan v1 has no patterns"):
        generate(client, 1, [0])
    assert generate(client, 1, None).shape == (1, 32, 32, 3)
