"""Triton python backends, one ``<model name>.py`` per model, copied by ``training.export`` into
each version folder as ``model.py``.

They run in NVIDIA's Triton container, where this project is not installed: each imports only
the standard library, numpy, torch and ``triton_python_backend_utils``, and reads every limit it
checks from the config ``parameters`` that ``training.export`` generates.
"""
