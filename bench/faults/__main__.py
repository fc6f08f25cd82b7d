"""``python -m bench.faults [--short|--long] [--scenario NAME ...]``: run, report, exit 1 on a failure.

Starts its own Triton (``embedded/triton.py``) unless ``--triton-grpc-url`` names one; RabbitMQ
and Redis come from ``ATELIER_BROKER_URL`` / ``ATELIER_REDIS_URL`` (``scripts/services.sh``).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import tempfile
from pathlib import Path

from bench.faults.catalog import SCENARIOS
from bench.faults.report import save
from embedded.triton import DEFAULT_REPOSITORY, TritonServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--short", dest="size", action="store_const", const="short", help="CI size (default)")
    size.add_argument("--long", dest="size", action="store_const", const="long", help="a few hundred jobs")
    parser.add_argument(
        "--scenario", action="append", choices=list(SCENARIOS), help="repeatable; default all"
    )
    parser.add_argument("--triton-grpc-url", help="use this Triton instead of starting one")
    parser.add_argument("--workdir", type=Path, help="logs and S3 data (default: a temporary folder)")
    args = parser.parse_args(argv)
    size_name = args.size or "short"
    names = args.scenario or list(SCENARIOS)
    command = shlex.join(["python", "-m", "bench.faults", *(argv if argv is not None else sys.argv[1:])])

    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="atelier-faults-"))
        )
        grpc_url = args.triton_grpc_url
        if grpc_url is None:
            print("starting Triton ...", flush=True)
            triton = stack.enter_context(
                TritonServer(DEFAULT_REPOSITORY, log_path=workdir / "tritonserver.log")
            )
            grpc_url = triton.grpc_url
        results = []
        for name in names:
            print(f"{name} ({size_name}) ...", flush=True)
            result = SCENARIOS[name](workdir / name, grpc_url, size_name)
            print(f"  {'passed' if result.passed else 'FAILED'}: {result.as_dict()}", flush=True)
            results.append(result)
    save(results, command=command)
    print("wrote RELIABILITY.md and bench/faults/results.json")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
