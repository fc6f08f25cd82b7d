"""Tenants' API keys, kept in PostgreSQL: stored hashed, with scopes, a requester each, and the
CORS origins of browser-facing ("publishable") keys."""
