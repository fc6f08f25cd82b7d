"""The worker's per-stage CPU timers: nested stages are counted once, and a worker process's
stage CPU reaches the benchmark through the multiprocess counter files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.perf.stage_cpu import cpu_stage, difference, read

ROOT = Path(__file__).resolve().parents[2]


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_stage_excludes_the_timed_stages_inside_it() -> None:
    spent: dict[str, float] = {}

    def record(name: str, seconds: float) -> None:
        spent[name] = spent.get(name, 0.0) + seconds

    with cpu_stage("delivery", record):
        burn(0.05)
        with cpu_stage("status", record):
            burn(0.1)

    assert spent["status"] == pytest.approx(0.1, abs=0.03)
    assert spent["delivery"] == pytest.approx(0.05, abs=0.03)


def test_stage_cpu_of_a_worker_process_is_read_from_its_counter_files(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import time
        from bench.perf.stage_cpu import install
        install()
        from worker import metrics
        with metrics.stage("listing", "encode"):
            end = time.thread_time() + 0.2
            while time.thread_time() < end:
                pass
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    before = read(tmp_path)

    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=ROOT)

    spent = difference(read(tmp_path), before)
    assert set(spent) == {"encode"}
    assert 0.18 <= spent["encode"] < 0.5


def test_reading_a_missing_folder_gives_nothing(tmp_path: Path) -> None:
    assert read(tmp_path / "none") == {}
