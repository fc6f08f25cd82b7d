"""Training on a shop's own catalog: a folder of images and an attributes CSV, checked row by
row before any training starts (``atelier-models train-cgan --catalog DIR``)."""
