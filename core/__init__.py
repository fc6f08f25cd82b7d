"""Atelier's shared core: the contracts, settings, broker topology, publishing, dead letters and
the job store that the producer, the worker and the operator commands all use. It imports none
of them (``lint-imports`` checks it)."""
