"""The real-browser harness: Debian's Chromium driven by Playwright, against the real stack.

For any page the API serves (the try-on page here; the review console next):

- ``browser`` (session): headless Chromium from ``ATELIER_CHROMIUM`` (default
  ``/usr/bin/chromium``, Debian's package, which ``scripts/setup.sh`` installs), launched by
  path: nothing is downloaded (``playwright install`` is never run).
- ``page`` (per test): a fresh context (empty storage, 1280x900) and a page in it. An uncaught
  error in the page's scripts fails the test that caused it.
- ``browser_stack`` (per module): a running :class:`~embedded.stack.Stack` (private Triton
  serving ``triton_models/``, a private S3 server, a listing and a try-on worker, on the shared
  RabbitMQ and Redis), keys in a fresh PostgreSQL database, and the API as operators run it
  (``atelier api serve`` on uvicorn, ``BrowserStack.api_url``), with a key of each kind. Another
  API process on the same stack with other settings: ``BrowserStack.serve_api(env)``.
- ``callback_receiver`` (per module): a real HTTP receiver of the module's stack's signed
  callbacks, with a callbacks worker allowed to deliver to it over plain HTTP on 127.0.0.1.
- ``screenshots``: saves a page's screenshot as ``docs/screenshots/<name>.png`` (the README
  links them), or under ``ATELIER_SCREENSHOTS_DIR``.

Mark browser test modules ``pytest.mark.browser`` (and ``triton``, ``slow`` when they use the
stack). A missing Chromium, or services that do not answer, fail the test with how to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from api.keys.migrate import upgrade
from api.keys.model import Scope
from api.keys.settings import DatabaseSettings
from api.keys.store import KeyStore
from embedded.postgres import scratch_database
from embedded.process import HOST, ROOT
from embedded.receiver import CallbackReceiver
from embedded.services import ApiServer
from embedded.stack import Pool, Stack
from embedded.triton import DEFAULT_REPOSITORY
from tests.integration.services import require_services

#: Debian's Chromium, unless ATELIER_CHROMIUM names another build
DEFAULT_CHROMIUM = "/usr/bin/chromium"
#: where screenshots go, unless ATELIER_SCREENSHOTS_DIR says otherwise
SCREENSHOTS = ROOT / "docs" / "screenshots"
#: the window every page test gets
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
#: the origin the publishable keys are registered for (a shop's own site)
SHOP_ORIGIN = "https://shop.example"
KEY_PEPPER = "browser-test-pepper"


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    path = Path(os.environ.get("ATELIER_CHROMIUM", DEFAULT_CHROMIUM))
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"no Chromium at {path}: install Debian's package (scripts/setup.sh does: apt-get install "
            "chromium) or point ATELIER_CHROMIUM at a Chromium binary"
        )
    return path


@pytest.fixture(scope="module")
def browser(chromium_executable: Path) -> Iterator[Browser]:
    """Chromium for one test module. Not for the session: Playwright's sync API keeps an asyncio
    event loop running in this thread while it is started, and later tests that call
    ``asyncio.run`` would fail with "cannot be called from a running event loop"."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context; fails its test on an uncaught error in the page's scripts."""
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    uncaught: list[str] = []
    opened.on("pageerror", lambda error: uncaught.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert not uncaught, f"uncaught errors in the page: {uncaught}"


@pytest.fixture(scope="session")
def screenshots() -> Callable[[Page, str], Path]:
    """``save(page, name)``: the page's screenshot as ``<dir>/<name>.png``; returns the path."""
    directory = Path(os.environ.get("ATELIER_SCREENSHOTS_DIR", SCREENSHOTS))

    def save(shown: Page, name: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.png"
        # the whole page, by growing the window to it: Playwright's full_page leaves this
        # Chromium's later clicks missing their target
        window = shown.viewport_size or VIEWPORT
        height = shown.evaluate("document.documentElement.scrollHeight")
        shown.set_viewport_size({"width": window["width"], "height": max(height, window["height"])})
        try:
            shown.screenshot(path=str(path), animations="disabled", caret="hide")
        finally:
            shown.set_viewport_size(window)
        return path

    return save


@dataclass
class BrowserStack:
    """A running stack behind the API, and a key of each kind (tokens, shown once)."""

    stack: Stack
    keys: KeyStore
    database_url: str
    #: ``atelier api serve`` on the stack; no page key configured
    api_url: str
    #: shop-a: a publishable key (submit:tryons, read; origin SHOP_ORIGIN), a secret key with
    #: every job scope, a reviewer's key (review, read)
    publishable: str
    secret: str
    reviewer: str
    #: shop-b's publishable key: another tenant
    other_publishable: str

    @contextmanager
    def serve_api(self, env: Mapping[str, str], *, label: str = "api-2") -> Iterator[str]:
        """Another ``atelier api serve`` on the same stack and keys, with ``env`` over its
        variables (e.g. ``ATELIER_TRYON_PAGE_KEY``); yields its URL, stopped on leaving."""
        api = ApiServer(
            settings=self.stack.settings,
            log_path=self.stack.logs / f"{label}.log",
            database_url=self.database_url,
            key_pepper=KEY_PEPPER,
            env=env,
        )
        api.start()
        try:
            yield api.url
        finally:
            api.stop()


def publishable_key(keys: KeyStore, requester: str) -> str:
    """A new browser-facing key of ``requester``: submit:tryons and read, from SHOP_ORIGIN."""
    scopes = [Scope.SUBMIT_TRYONS, Scope.READ]
    created = keys.create(requester, scopes=scopes, publishable=True, cors_origins=[SHOP_ORIGIN], name="page")
    return created[1]


@pytest.fixture(scope="module")
def browser_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserStack]:
    require_services()
    workdir = tmp_path_factory.mktemp("browser-stack")
    with ExitStack() as exit_stack:
        server = DatabaseSettings().database_url.get_secret_value()
        database_url = exit_stack.enter_context(scratch_database(server, prefix="atelier_browser"))
        upgrade(database_url)
        stack = exit_stack.enter_context(
            Stack(
                tag="browser",
                workdir=workdir,
                triton_repository=DEFAULT_REPOSITORY,
                receiver=False,
                workers=[Pool("listing"), Pool("tryon")],
            )
        )
        keys = KeyStore(database_url, pepper=KEY_PEPPER)
        exit_stack.callback(keys.close)
        job_scopes = [Scope.SUBMIT_LISTINGS, Scope.SUBMIT_TRYONS, Scope.READ, Scope.CANCEL]
        api = stack.start_api(database_url=database_url, key_pepper=KEY_PEPPER)
        yield BrowserStack(
            stack=stack,
            keys=keys,
            database_url=database_url,
            api_url=api.url,
            publishable=publishable_key(keys, "shop-a"),
            secret=keys.create("shop-a", scopes=job_scopes, name="catalog sync")[1],
            reviewer=keys.create("shop-a", scopes=[Scope.REVIEW, Scope.READ], name="reviewer")[1],
            other_publishable=publishable_key(keys, "shop-b"),
        )


@pytest.fixture(scope="module")
def callback_receiver(browser_stack: BrowserStack) -> Iterator[CallbackReceiver]:
    """A real HTTP receiver for the module's stack (which starts none): it verifies the stack's
    signatures (``Received.event`` is ``None`` for one that does not verify), and a callbacks
    worker, the only one on the stack, delivers to it over plain HTTP on 127.0.0.1. A job sends
    to it with ``{"callback": {"url": receiver.url_for(requester)}}``."""
    settings = browser_stack.stack.settings
    secret = settings.callback_secret
    receiver = CallbackReceiver(
        secrets={name: settings.signing_secrets(name) for name in settings.callback_secrets},
        default_secret=secret.get_secret_value() if secret is not None else None,
    )
    with receiver:
        plain_http = {"callback_allow_http": True, "callback_allowed_hosts": [HOST]}
        browser_stack.stack.start_workers(Pool("callbacks", settings=plain_http))
        try:
            yield receiver
        finally:
            browser_stack.stack.stop_worker("callbacks")
