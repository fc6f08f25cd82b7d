"""The seed contract on the committed backends (docs/determinism.md): an item gets the same bytes
alone and in any batch, at any position, on this machine's kernel path and on forced ones, so a
green run here stands for both CPU vendors. Through the real Triton server:
tests/integration/test_determinism_triton.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench.backends import load_backend  # noqa: E402
from bench.determinism.invariance import MODELS, Placement, Serve, failures, placements, strategy  # noqa: E402
from bench.determinism.paths import CI_PATHS, KERNEL_PATHS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", MODELS)
def test_an_item_gets_the_same_bytes_alone_and_at_any_place_in_any_batch(name: str) -> None:
    backend = load_backend(name)
    serve = strategy(backend, name, "fixed")
    found, checked, alone = failures(serve)
    assert checked > 500
    assert found == [], _diagnosis(serve, found, alone)


def _diagnosis(serve: Serve, found: list[Placement], alone: np.ndarray) -> str:
    """What the next reader of a failure needs: whether it repeats (each failing item served alone
    and in its batch again), the threads and the machine's load. A failure stays a failure."""
    lines = [f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}"]
    for failure in found[:8]:
        again_alone = serve([failure.item]).numpy()[0]
        again_batch = serve(list(failure.batch)).numpy()[failure.batch.index(failure.item)]
        lines.append(
            f"{failure}: alone again == alone first: {np.array_equal(again_alone, alone[failure.item])}, "
            f"batch again == alone again: {np.array_equal(again_batch, again_alone)}"
        )
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("path", CI_PATHS)
def test_the_contract_holds_on_a_forced_kernel_path(path: str, tmp_path: Path) -> None:
    """MKL and oneDNN read these variables when torch loads: each path runs in its own process."""
    out = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
    finished = subprocess.run(
        [sys.executable, "-m", "bench.determinism.run", "--out", str(out)],
        env=env | KERNEL_PATHS[path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    result = json.loads(out.read_text())
    assert result["env"] == KERNEL_PATHS[path]  # the child really ran on the forced path
    for name in MODELS:
        assert result["models"][name]["fixed"]["failures"] == 0, (name, result["models"][name])
        assert result["models"][name]["fixed"]["checked"] > 500
    assert finished.returncode == 0, finished.stderr[-2000:]


def test_the_check_finds_an_item_whose_bytes_change_with_its_batch() -> None:
    """A serving function that rounds differently for batches over 4 items: the check must say so."""

    def batch_dependent(indices: list[int]) -> torch.Tensor:
        images = torch.tensor(indices, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 2, 2, 3).clone()
        if len(indices) > 4:
            images[:, 0, 0, 0] += 1
        return images

    found, checked, alone = failures(batch_dependent, items=16)
    batches_over_4 = [b for b in placements(16) if len(b) > 4]
    assert checked == sum(len(b) for b in placements(16))
    assert len(found) == sum(len(b) for b in batches_over_4)
    assert {(f.pixels, f.levels) for f in found} == {(1, 1)}
    report = _diagnosis(batch_dependent, found, alone)
    assert report.count("alone again == alone first: True, batch again == alone again: False") == 8
