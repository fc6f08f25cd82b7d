"""Conditional GAN for product images (category + colour -> 32x32 RGB)."""
