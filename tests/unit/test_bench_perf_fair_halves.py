"""The comparisons' other sides run as the pipeline does: the raw result path in whole jobs, the
in-process alternative with the backends' intra-op threads, and the report saying where the
bound's halves came from."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.backends import config_parameters
from bench.perf.intra_op import MODELS, intra_op_threads
from bench.perf.report import render, targets
from bench.perf.result_path import VARIANTS, images_per_process
from bench.perf.torch_inference import TorchInference
from embedded.triton import DEFAULT_REPOSITORY
from training.export import INTRA_OP_THREADS


def configs_only(tmp_path: Path) -> Path:
    """A copy of the committed repository's ``config.pbtxt`` files (no model files)."""
    for name in MODELS:
        (tmp_path / name).mkdir()
        shutil.copy(DEFAULT_REPOSITORY / name / "config.pbtxt", tmp_path / name / "config.pbtxt")
    return tmp_path


def set_threads(config: Path, value: str, *, key: str = "intra_op_threads") -> None:
    """Rewrite the ``intra_op_threads`` parameter of ``config`` to ``key: value``."""
    text = config.read_text()
    index = text.index('key: "intra_op_threads"')
    head, tail = text[:index], text[index:]
    tail = tail.replace('key: "intra_op_threads"', f'key: "{key}"', 1)
    tail = re.sub(r'string_value: "[^"]*"', f'string_value: "{value}"', tail, count=1)
    config.write_text(head + tail)


def test_in_process_threads_are_the_committed_backends_intra_op_threads() -> None:
    assert intra_op_threads() == INTRA_OP_THREADS
    assert {config_parameters(DEFAULT_REPOSITORY / name)["intra_op_threads"] for name in MODELS} == {
        str(INTRA_OP_THREADS)
    }


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("other_threads", "1", "parameter intra_op_threads is missing"),
        ("intra_op_threads", "0", "parameter intra_op_threads must be a positive integer, got '0'"),
        ("intra_op_threads", "two", "must be a positive integer, got 'two'"),
    ],
)
def test_intra_op_threads_names_the_config_and_the_rule(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    config = configs_only(tmp_path) / MODELS[0] / "config.pbtxt"
    set_threads(config, value, key=key)

    with pytest.raises(ValueError, match=message) as raised:
        intra_op_threads(tmp_path)
    assert str(config) in str(raised.value)


def test_intra_op_threads_must_agree_across_the_models(tmp_path: Path) -> None:
    set_threads(configs_only(tmp_path) / MODELS[1] / "config.pbtxt", "3")

    with pytest.raises(ValueError, match="must be the same for every model"):
        intra_op_threads(tmp_path)


def test_torch_inference_runs_the_config_threads_whatever_torch_had_before() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(INTRA_OP_THREADS + 1)
    inference = TorchInference()
    try:
        inference.load()
        assert inference.threads == INTRA_OP_THREADS
        assert torch.get_num_threads() == INTRA_OP_THREADS
    finally:
        inference.close()
        torch.set_num_threads(before)


def test_torch_inference_threads_given_explicitly_win_over_the_backends() -> None:
    before = torch.get_num_threads()
    inference = TorchInference(threads=INTRA_OP_THREADS + 1)
    try:
        inference.load()
        assert torch.get_num_threads() == INTRA_OP_THREADS + 1
    finally:
        inference.close()
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("total", "processes", "per"),
    [(16, 1, 16), (400, 2, 200), (401, 2, 200), (10, 3, VARIANTS), (3, 1, VARIANTS), (30, 4, 4)],
)
def test_result_path_shares_its_images_out_in_whole_jobs(total: int, processes: int, per: int) -> None:
    assert images_per_process(total, processes) == per
    assert per % VARIANTS == 0


def above_the_bound(*, result_path_run: str, overlap: bool, upload_threads: int = 10) -> dict[str, Any]:
    in_flight = {"jobs_in_flight": 8, "upload_threads": upload_threads}
    best = {"images_per_s": 200.0, **(in_flight if overlap else {})}
    formed = {"product_cgan": {"mean_batch": 7.1, "executions": 10, "images": 71}}
    pipeline_best = {"processes": 2, "images_per_s": 150.0, "formed_batches": formed}
    return {
        "result_path": {
            "best": best,
            "points": [],
            "variants_per_job": VARIANTS,
            "format": "png",
            "encode_ms_per_image": 2.4,
            "bytes_per_image": 26000,
            "command": "python -m bench.perf",
            "ran_at": result_path_run,
        },
        "pipeline": {
            "best": pipeline_best,
            "triton_at_formed_batches": {"images_per_s": 300.0},
            "command": "python -m bench.perf",
            "ran_at": "2026-12-06 21:00 UTC",
        },
    }


def caveat(text: str) -> str:
    start = text.index("The pipeline ran above the shared-cores bound")
    return text[start : text.index("See docs/benchmarks/README.md.", start)]


@pytest.mark.parametrize(
    ("upload_threads", "overlap"),
    [
        (10, "8 jobs of 4 images and 10 uploads in flight per process"),
        (0, "8 jobs of 4 images in flight per process, each job putting its own"),
    ],
)
def test_above_the_bound_the_report_says_where_both_halves_came_from(
    upload_threads: int, overlap: str
) -> None:
    bench = above_the_bound(
        result_path_run="2026-12-06 21:00 UTC", overlap=True, upload_threads=upload_threads
    )
    found = targets(bench)["pipeline_vs_shared_bound"]
    assert found["ratio"] == 1.25  # 150 / (1 / (1/300 + 1/200))

    text = caveat(render({"benchmarks": {"result_path": bench["result_path"]}, "targets": targets(bench)}))

    assert "T = 300.0 images/s" in text and "mean 7.1" in text
    assert "R = 200.0 images/s" in text
    assert overlap in text


def test_the_caveat_names_the_run_of_a_result_path_from_another_run() -> None:
    bench = above_the_bound(result_path_run="2026-12-05 09:00 UTC", overlap=False)
    data = {"benchmarks": bench, "targets": targets(bench)}

    text = render(data)

    assert "from another run (`python -m bench.perf`, 2026-12-05 09:00 UTC)" in caveat(text)
    assert "one image at a time per process" in caveat(text)
    assert "Measured before the result path overlapped its puts" in text


def test_the_report_says_the_in_process_alternative_runs_the_backends_threads() -> None:
    bench = {"inprocess": {"torch_threads": INTRA_OP_THREADS, "points": []}}

    text = render({"benchmarks": bench, "targets": {}})

    assert f"torch runs {INTRA_OP_THREADS} intra-op thread(s) per process" in text
    assert "`intra_op_threads` each Triton instance runs with" in text
