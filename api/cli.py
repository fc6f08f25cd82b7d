"""``atelier api``: serve the HTTP API, and write its OpenAPI document.

Added to ``atelier`` in ``producer.cli``. FastAPI, uvicorn and the key store's database code
(the ``api`` extra) are imported by each command, so ``atelier`` itself starts without them.
``serve`` reads ``ATELIER_*`` settings (``api.settings.ApiSettings`` for the bind address and
limits, ``api.keys.settings.DatabaseSettings`` for the key store) and runs until stopped. Its
per-request access log is off unless ``--access-log``: the ``/metrics`` series count every answer
by route and status, and a log line per request cost each submit CPU for what they already say.
``openapi`` writes the document ``docs/openapi.json`` holds (a unit test keeps the two in step).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI

app = typer.Typer(
    name="api", help="The HTTP API: serve it, or write its OpenAPI document.", no_args_is_help=True
)

#: where the committed OpenAPI document lives, relative to the repository root
OPENAPI_PATH = Path("docs/openapi.json")


class _NoKeys:
    """A key verifier that knows no key: the document does not depend on the key store."""

    def authenticate(self, secret: str) -> None:
        return None


def document_app() -> FastAPI:
    """The app as the OpenAPI document describes it: default settings, no services behind it
    (nothing is connected until a route runs)."""
    from api.app import create_app
    from api.presign import S3Presigner
    from api.readiness import Readiness
    from api.settings import ApiSettings

    settings = ApiSettings(api_public_url="")
    producer: Any = None  # the document needs no producer: no route runs
    return create_app(
        producer=producer,
        keys=_NoKeys(),
        settings=settings,
        presigner=S3Presigner(settings),
        readiness=Readiness(settings, probes={}),
    )


def openapi_text() -> str:
    """The OpenAPI document as committed: sorted keys, two-space indents, a final newline."""
    return json.dumps(document_app().openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@app.command()
def openapi(
    out: Annotated[Path, typer.Option("--out", help="where to write it; '-' for stdout")] = OPENAPI_PATH,
) -> None:
    """Write the API's OpenAPI 3.1 document."""
    text = openapi_text()
    if str(out) == "-":
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}", err=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default ATELIER_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default ATELIER_API_PORT)")] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="log a line per request (uvicorn's)")
    ] = False,
) -> None:
    """Serve the API with uvicorn until stopped (Ctrl-C)."""
    import gc

    import uvicorn

    from api.app import create_app
    from api.keys.store import KeyStore
    from api.settings import ApiSettings
    from producer.client import Producer

    settings = ApiSettings()
    with Producer(settings) as producer, KeyStore.from_settings() as keys:
        application = create_app(producer=producer, keys=keys, settings=settings)
        # the objects made so far (the app, its routes and models, the libraries: most of the
        # process's, none of them garbage) leave the collector's generations, so a full
        # collection no longer walks them all in the middle of some request
        gc.freeze()
        uvicorn.run(
            application,
            host=host or settings.api_host,
            port=port if port is not None else settings.api_port,
            proxy_headers=True,
            log_level="info",
            access_log=access_log,
        )
