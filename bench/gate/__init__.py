"""The quality gate benchmark: ``python -m bench.gate`` (see ``__main__``)."""
