"""The Atelier worker: Celery tasks that turn a queued request into stored images and callbacks.

Each task reads as the story of a job (validate, infer, encode, store, record, notify); each
boundary it crosses sits behind one small module: ``inference`` (Triton over gRPC), ``encoding``
(Pillow), ``storage`` (S3 through the minio SDK) and ``callbacks`` (Standard Webhooks over
httpx). ``errors`` types every failure as retryable or permanent; ``settings`` holds every host,
credential and timeout, from ``ATELIER_*`` environment variables. ``boundaries`` names what a
job talks to as protocols, and ``stubs`` ships in-memory stand-ins for tests and benchmarks.
``app`` is what ``celery -A worker.app`` runs: ``celery_app`` (configuration), ``signals`` (start
and stop hooks) and ``gate`` (every message checked first, and the refusal policy).
"""
