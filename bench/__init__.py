"""Benchmarks and fault suites that write their results to files."""
