"""The embedded default: services started as child processes for local runs and tests.

Each module starts one real service from an installed wheel (no containers, no root), picks
free ports unless told otherwise, waits until it answers, and stops it with SIGTERM, then
SIGKILL. ``embedded.stack.Stack`` assembles them (with a private namespace and the Celery
workers) for the demo, the benchmarks and the integration tests. Production points the same
clients at the deployed services instead.
"""
