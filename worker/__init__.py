"""The Atelier worker: Celery tasks that turn a queued request into stored images and callbacks.

Each task reads as the story of a job (validate, infer, encode, store, record, notify); each
boundary it crosses sits behind one small module: ``inference`` (Triton over gRPC), ``encoding``
(Pillow), ``storage`` (S3 through the minio SDK) and ``callbacks`` (Standard Webhooks over
httpx). ``errors`` types every failure as retryable or permanent; ``settings`` holds every host,
credential and timeout, from ``ATELIER_*`` environment variables.
"""
