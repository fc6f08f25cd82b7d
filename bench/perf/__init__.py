"""Performance benchmarks (issue 5): ``python -m bench.perf [--quick|--full] [--only NAME]``.

One module per benchmark, each a function ``run(env, size) -> dict`` over the services in
:class:`bench.perf.rig.Environment`: ``ceiling`` (raw Triton), ``result_path`` (encode + put,
no broker), ``pipeline`` (end to end at saturation), ``inprocess`` (the same jobs with the model
in each Celery worker, no Triton), ``backlog`` (try-on latency under a listing backfill) and
``scaling`` (worker processes x dynamic batching, and the worker's CPU per image). ``report``
writes ``bench/perf/results.json``, the plots under ``docs/benchmarks/`` and ``BENCHMARKS.md``;
``python -m bench.perf.profile`` profiles a listing worker with pyinstrument.
None is a timed test: ``tests/integration/test_bench_smoke.py`` runs the tiny size and checks
the shape of the results only.
"""
