"""``GET /try-on``: the shopper's try-on page, and ``GET /try-on/key``, the check of a key
entered in it.

The page is server-rendered (``templates/try_on.html``) from the serving contract
(``api.pages.tryon_form``); its script (``static/try-on.js``) checks the form as the server
does, submits ``POST /v1/tryons`` with a publishable key, shows the server's problem+json errors
next to the fields they name, and follows ``GET /v1/jobs/{id}/events`` until the picture
arrives. The stream is read with ``fetch()`` (``static/sse.js``), which sends the key in the
``Authorization`` header like every other call: ``EventSource`` cannot send headers, and a key
or token in the URL would end up in logs, history and ``Referer``.

The page's key is either the operator's (``ATELIER_TRYON_PAGE_KEY``, written into the page) or
one entered once and kept in the browser; either must be publishable (``api.pages.page_key``).
A configured key that is not is a misconfiguration: the page answers 500 and logs why, rather
than hand out a secret key. None of these routes is an API operation: they stay out of the
OpenAPI document.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from api.keys.errors import KeyStoreUnavailable
from api.keys.model import ApiKey, Scope
from api.limits import rate_limited
from api.pages.headers import new_nonce, page_headers
from api.pages.page_key import PageKeyRefused, browser_safe, configured_page_key
from api.pages.settings import PageSettings
from api.pages.templating import templates
from api.pages.tryon_form import tryon_form
from api.problems import ProblemError
from core.contracts.jobs import JobState

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

#: where the page is served
PAGE_PATH: Final = "/try-on"
#: where the page checks a key entered in it before keeping it
KEY_CHECK_PATH: Final = "/try-on/key"
#: what the page does with its key: submit try-ons and follow them
PAGE_SCOPES: Final = (Scope.SUBMIT_TRYONS, Scope.READ)
#: the problem type of a key refused for a page (``https://atelier.dev/problems/key-not-for-pages``)
KEY_NOT_FOR_PAGES: Final = "key-not-for-pages"
#: the API paths the page's script calls
API_PATHS: Final = {"submit": "/v1/tryons", "jobs": "/v1/jobs/", "keyCheck": KEY_CHECK_PATH}
#: the states after which a job changes no more: the page stops following it at their event
TERMINAL_STATES: Final = sorted(state.value for state in JobState if state.terminal)
#: Retry-After of the page while the key store does not answer
RETRY_AFTER_S: Final = 5

FORM: Final = tryon_form()


@router.get(PAGE_PATH, response_class=HTMLResponse)
async def try_on_page(request: Request) -> Response:
    """The form, the progress and the picture; 500 if the configured key is not browser-safe."""
    settings: PageSettings = request.app.state.page_settings
    nonce = new_nonce()
    headers = page_headers(request.app.state.settings, nonce)
    try:
        key = await configured_page_key(
            request.app.state.keys, settings.tryon_page_key.get_secret_value(), PAGE_SCOPES
        )
    except PageKeyRefused as refusal:
        log.error("the try-on page is not served: %s (ATELIER_TRYON_PAGE_KEY)", refusal)
        return _unavailable(request, nonce, headers, 500, "its API key is not one a browser may hold")
    except KeyStoreUnavailable:
        log.warning("the try-on page is not served: the key store is unavailable")
        headers["Retry-After"] = str(RETRY_AFTER_S)
        return _unavailable(request, nonce, headers, 503, "it cannot check its API key right now")
    config: dict[str, Any] = {
        "key": key,
        "paths": API_PATHS,
        "terminalStates": TERMINAL_STATES,
        **FORM.script_config(),
    }
    context = {"form": FORM, "config": config, "nonce": nonce, "key_configured": key is not None}
    return templates.TemplateResponse(request, "try_on.html", context, headers=headers)


def _unavailable(request: Request, nonce: str, headers: dict[str, str], status: int, reason: str) -> Response:
    context = {"nonce": nonce, "reason": reason}
    return templates.TemplateResponse(
        request, "unavailable.html", context, status_code=status, headers=headers
    )


@router.get(KEY_CHECK_PATH, status_code=204)
async def check_page_key(key: ApiKey = Depends(rate_limited)) -> Response:  # noqa: B008
    """204 if the key in ``Authorization`` may be kept by the page; 401 unknown or revoked, 403
    (``key-not-for-pages``) a secret key or one without the page's scopes. Counted against the
    key's rate like a ``/v1`` request."""
    reason = browser_safe(key, PAGE_SCOPES)
    if reason is not None:
        raise ProblemError(403, "Forbidden", reason, kind=KEY_NOT_FOR_PAGES)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})
