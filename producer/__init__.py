"""Atelier's public client: request contracts, job records, publishing, and the CLI.

Catalog systems and the try-on feature import this package; it never imports ``worker``.
"""
