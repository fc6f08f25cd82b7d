"""Training, evaluation and export of Atelier's generative models (needs the ``train`` extra).

Kept outside ``triton_models/`` because Triton loads every folder in its repository.
"""
