"""The fault suite: jobs on real services while faults are injected, then every job checked.

``python -m bench.faults [--short|--long] [--scenario NAME]`` runs the scenarios
(``bench/faults/scenarios.py``) and writes ``RELIABILITY.md`` and ``bench/faults/results.json``
(``bench/faults/report.py``). ``tests/integration/test_faults_short.py`` runs the short version.
"""
