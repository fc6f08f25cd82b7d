"""The pages' Jinja2 templates and static files, both shipped inside the package.

Templates are autoescaped (``.html``); values a script needs go into the page as JSON through
``tojson`` (which escapes ``<``, ``>``, ``&`` and quotes), never into inline script. Static
files are served by Starlette's ``StaticFiles`` under :data:`STATIC_PATH` with ``ETag`` and
``Last-Modified``, so a returning browser revalidates instead of downloading again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi.templating import Jinja2Templates

HERE: Final = Path(__file__).parent
#: where the pages' static files (CSS, ES modules) are served
STATIC_PATH: Final = "/static"
#: the name of that mount (``url_path_for``)
STATIC_NAME: Final = "pages-static"

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["static_path"] = STATIC_PATH
#: a number as people write it: ``145.0`` as 145, ``57.1`` as 57.1
templates.env.filters["number"] = lambda value: f"{value:g}"
STATIC_DIRECTORY: Final = HERE / "static"
