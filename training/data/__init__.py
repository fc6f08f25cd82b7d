"""Data sets the models learn from: Fashion-MNIST products and procedural try-on renders."""
