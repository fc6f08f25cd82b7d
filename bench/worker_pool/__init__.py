"""Which Celery pool a listing worker runs: one job per process (prefork) or several jobs in
flight in one process (threads), compared on images/s and CPU per image (``python -m
bench.worker_pool``; results in ``bench/worker_pool/results.json`` and ``docs/benchmarks/worker-pool.md``)."""
