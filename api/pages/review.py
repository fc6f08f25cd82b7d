"""``GET /review``: the review console, and ``GET /review/key``, the check of a reviewer's key.

The console is server-rendered (``templates/review.html``: the sign-in form, the filters, the help
overlay listing ``api.pages.review_console.SHORTCUTS``, and ``<template>`` elements for the cards);
its script (``static/review.js``) fills the grid from ``GET /v1/review/images``, sends decisions
to ``POST /v1/review/decisions`` and reads an image's trail from its ``/audit``, all with the key
in the ``Authorization`` header, never in a URL. Cards are built by cloning those templates and
setting text, so nothing the API returns is ever parsed as HTML.

The reviewer's key is a secret key (``review`` is not a publishable scope), so the operator never
writes one into the page: the reviewer enters it once, the page asks ``GET /review/key`` who it
is, and keeps it in ``sessionStorage`` only (gone when the tab closes; never ``localStorage``,
never a cookie, so no other tab or later visitor of the machine finds it and no form post can
ride on it). The page runs under the same strict Content Security Policy as every page
(``api.pages.headers``): no inline script, ``fetch`` to this origin only.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from api.keys.model import ApiKey, Scope
from api.limits import rate_limited
from api.pages.headers import new_nonce, page_headers
from api.pages.review_console import (
    CATEGORY_CHOICES,
    FLAG_CHOICES,
    KEY_NAMES,
    REASON_SUGGESTIONS,
    SHORTCUTS,
    script_config,
)
from api.pages.templating import templates
from api.problems import ProblemError
from api.review.tables import MAX_REASON_CHARS

router = APIRouter(include_in_schema=False)

#: where the console is served
PAGE_PATH: Final = "/review"
#: where the console asks who a key entered in it is, before keeping it
KEY_CHECK_PATH: Final = "/review/key"
#: the problem type of a key that cannot review (``https://atelier.dev/problems/key-cannot-review``)
KEY_CANNOT_REVIEW: Final = "key-cannot-review"
#: the API paths the console's script calls (``audit``: ``{images}{job_id}/{variant}/audit``)
API_PATHS: Final = {
    "images": "/v1/review/images",
    "decisions": "/v1/review/decisions",
    "image": "/v1/review/images/",
    "keyCheck": KEY_CHECK_PATH,
}


@router.get(PAGE_PATH, response_class=HTMLResponse)
async def review_console(request: Request) -> Response:
    """The console's frame; the grid is filled by its script once a key is entered."""
    nonce = new_nonce()
    context = {
        "nonce": nonce,
        "config": script_config(API_PATHS),
        "shortcuts": SHORTCUTS,
        "key_names": KEY_NAMES,
        "categories": CATEGORY_CHOICES,
        "flags": FLAG_CHOICES,
        "reasons": REASON_SUGGESTIONS,
        "max_reason_chars": MAX_REASON_CHARS,
    }
    headers = page_headers(request.app.state.settings, nonce)
    return templates.TemplateResponse(request, "review.html", context, headers=headers)


@router.get(KEY_CHECK_PATH)
async def check_review_key(key: ApiKey = Depends(rate_limited)) -> Response:  # noqa: B008
    """Who the key in ``Authorization`` is, if it may review: ``{key_id, requester, admin}``
    (``admin``: it may look at other requesters' images). 401 unknown or revoked; 403
    (``key-cannot-review``) without the ``review`` scope. Counted against the key's rate."""
    if not key.allows(Scope.REVIEW):
        raise ProblemError(
            403,
            "Forbidden",
            "this key lacks the 'review' scope: sign in with a reviewer's key",
            kind=KEY_CANNOT_REVIEW,
        )
    body = {"key_id": key.key_id, "requester": key.requester, "admin": key.allows(Scope.ADMIN)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
