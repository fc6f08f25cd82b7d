"""Measuring the generators: a Fashion-MNIST judge classifier, metrics and the report."""
