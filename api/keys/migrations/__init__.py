"""The key store's Alembic environment (``env.py``) and revisions (``versions/``), shipped as
package data and run in code by ``api.keys.migrate`` (no ``alembic.ini``)."""
