"""The HTTP API's load benchmark: submits through ``POST /v1/listings`` against direct
``Producer.submit`` at the same concurrency, in the same run, on the real Redis, RabbitMQ and
PostgreSQL (``python -m bench.api``; issue 13's target: API p99 <= 1.5x direct p99)."""
