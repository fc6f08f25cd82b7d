"""Wires the pages into the API app: their routes, their settings and their static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.pages import review, tryon
from api.pages.settings import PageSettings
from api.pages.templating import STATIC_DIRECTORY, STATIC_NAME, STATIC_PATH


def install_pages(app: FastAPI, settings: PageSettings) -> None:
    """Serve the pages on ``app`` (outside its OpenAPI document) with ``settings``."""
    app.state.page_settings = settings
    app.include_router(tryon.router)
    app.include_router(review.router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIRECTORY), name=STATIC_NAME)
