"""One real Triton server for the integration tests, serving the committed ``triton_models/``
(the trained product cGAN and try-on cVAE)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from embedded.triton import DEFAULT_REPOSITORY, TritonServer


@pytest.fixture(scope="session")
def triton_repository() -> Path:
    return DEFAULT_REPOSITORY


@pytest.fixture(scope="session")
def triton(triton_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    log = tmp_path_factory.mktemp("triton-log") / "tritonserver.log"
    with TritonServer(triton_repository, log_path=log) as server:
        yield server
