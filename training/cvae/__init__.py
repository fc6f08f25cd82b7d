"""Conditional VAE for try-on images (measurements + garment + size -> 64x64 RGB)."""
