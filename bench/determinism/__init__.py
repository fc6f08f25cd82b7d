"""Atelier's seed contract measured: an item's bytes alone and in any batch, under several CPU
kernel paths, for each serving option, with each option's cost (``python -m bench.determinism``)."""
