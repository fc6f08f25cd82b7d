"""Atelier's HTTP front door (issue 13): the API service that catalog platforms, the try-on
frontend and operators call with a key per tenant. It goes through the same core as the Python
producer (``core``), never around it; tenants and keys live in PostgreSQL (``api.keys``)."""
