"""Operator commands (``atelier ops``, ``atelier dlq``): queues, workers, models and their default
versions, dead letters, and service checks. Built on ``core``; never imports the worker."""
