"""Pages for people, served by the API process beside ``/v1``: server-rendered HTML (Jinja2,
``templates/``), plain CSS and a little vanilla JavaScript as ES modules (``static/``), no build
step. One module per page (``tryon``: the shopper's try-on page; ``review``: the reviewers'
console); a page calls the public API from the browser with a key entered in it or, for the
try-on page, a publishable key (``page_key``), like any client would, under a strict Content
Security Policy (``headers``). ``install_pages`` adds them to an app; none of
them is an API operation, so none is in the OpenAPI document.
"""

from api.pages.settings import PageSettings
from api.pages.site import install_pages

__all__ = ["PageSettings", "install_pages"]
