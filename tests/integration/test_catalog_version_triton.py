"""A version trained on a catalog, served by the real Triton beside the committed version 1:
Triton loads the version folder with its extra files (manifest.json, MODEL_CARD.md, PNGs), and
each version refuses the categories and colours its own manifest does not list."""

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

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    root = tmp_path_factory.mktemp("catalog-triton")
    repository = committed_repository(root / "repository")
    assert export_tiny(root, repository) == repository / "product_cgan" / "2"
    serve_every_version(repository)
    with TritonServer(repository, state_dir=root / "state", log_path=root / "tritonserver.log") as triton:
        yield triton


def generate(
    client: grpcclient.InferenceServerClient, version: int, category: int, colour: int
) -> np.ndarray:
    arrays = products([category], [colour], [5])
    inputs = []
    for name, values in arrays.items():
        tensor = grpcclient.InferInput(name, list(values.shape), CLIENT_DTYPES[values.dtype.name])
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    images: np.ndarray = client.infer(PRODUCT_GENERATOR.name, inputs, model_version=str(version)).as_numpy(
        "IMAGE"
    )
    return images


def test_catalog_version_loads_beside_version_1_and_keeps_to_its_manifest(server: TritonServer) -> None:
    version_dir = server.repository / "product_cgan" / "2"
    assert {"manifest.json", "MODEL_CARD.md", "samples.png"} <= {p.name for p in version_dir.iterdir()}
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        assert client.is_model_ready("product_cgan", "1") and client.is_model_ready("product_cgan", "2")
        assert read_manifest(version_dir).conditions.category_slugs() == ("scarf", "tee", "skirt")
        image = generate(client, 2, category=2, colour=1)  # skirt, coral: only version 2 knows them
        assert image.shape == (1, 32, 32, 3) and image.dtype == np.uint8
        with pytest.raises(InferenceServerException, match=r"CATEGORY\[0\]=3 outside \[0, 3\)"):
            generate(client, 2, category=3, colour=0)
        with pytest.raises(InferenceServerException, match=r"COLOUR\[0\]=5 outside \[0, 2\)"):
            generate(client, 2, category=0, colour=5)
        assert generate(client, 1, category=9, colour=11).shape == (1, 32, 32, 3)  # v1 keeps its 10 x 12
