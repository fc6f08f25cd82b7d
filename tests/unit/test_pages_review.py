"""``api.pages.review``: the review console's frame and its key check (a stub key verifier and
Starlette's test client here; the console in a real browser on the real stack in
``tests/browser/test_review_console.py``)."""

from __future__ import annotations

import json
import re
import warnings
from html.parser import HTMLParser

import pytest

from api.app import create_app
from api.keys.errors import KeyStoreUnavailable
from api.keys.model import ApiKey, Scope
from api.pages import PageSettings
from api.pages.review_console import CATEGORY_CHOICES, SHORTCUTS, key_map
from api.pages.templating import STATIC_DIRECTORY
from api.readiness import Readiness
from api.settings import ApiSettings
from serving_contract.taxonomy import CATEGORIES

with warnings.catch_warnings():  # starlette's notice about httpx, not ours to act on
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

#: the stub's keys: token -> key
KEYS = {
    "atl_reviewer": ApiKey("k-rev", "shop-a", frozenset({Scope.REVIEW, Scope.READ})),
    "atl_admin": ApiKey("k-adm", "ops", frozenset({Scope.REVIEW, Scope.ADMIN})),
    "atl_submitter": ApiKey("k-sub", "shop-a", frozenset({Scope.SUBMIT_LISTINGS, Scope.READ})),
    "atl_publishable": ApiKey(
        "k-pub", "shop-a", frozenset({Scope.SUBMIT_TRYONS, Scope.READ}), publishable=True
    ),
}


class StubKeys:
    def __init__(self) -> None:
        self.down = False

    def authenticate(self, secret: str) -> ApiKey | None:
        if self.down:
            raise KeyStoreUnavailable("the key store is unavailable: stub")
        return KEYS.get(secret)


def client(keys: StubKeys | None = None, **settings: object) -> TestClient:
    api_settings = ApiSettings.model_validate({"api_rate_limit": "", **settings})
    app = create_app(
        producer=None,  # type: ignore[arg-type]  # no route here submits
        keys=keys or StubKeys(),
        settings=api_settings,
        readiness=Readiness(api_settings, probes={}),
        pages=PageSettings(),
    )
    return TestClient(app)


def page_config(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="page-config">(.*?)</script>', html, re.S)
    assert found is not None
    config: dict[str, object] = json.loads(found.group(1))
    return config


class Labels(HTMLParser):
    """The page's ids, ``<label for>`` targets, and the help overlay's rows (keys, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.label_for: set[str] = set()
        self.buttons_without_type = 0
        self.help_rows: list[tuple[list[str], str]] = []
        self._in_help = False
        self._in: str | None = None
        self._keys: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "label" and found.get("for"):
            self.label_for.add(str(found["for"]))
        if tag == "button" and "type" not in found:
            self.buttons_without_type += 1
        if tag == "dl" and found.get("class") == "shortcuts":
            self._in_help = True
        if self._in_help and tag in ("kbd", "dd"):
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == "dl":
            self._in_help = False
        if tag in ("kbd", "dd"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "kbd":
            self._keys.append(data)
        elif self._in == "dd":
            self.help_rows.append((self._keys, data))
            self._keys = []


def parsed(html: str) -> Labels:
    labels = Labels()
    labels.feed(html)
    return labels


def check_key(token: str | None, keys: StubKeys | None = None) -> tuple[int, dict[str, object], str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = client(keys).get("/review/key", headers=headers)
    return answer.status_code, answer.json(), answer.headers.get("cache-control", "")


# --- the page ---


def test_the_console_is_served_without_any_key_and_asks_for_one() -> None:
    answer = client().get("/review")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert 'id="sign-in"' in answer.text and 'type="password"' in answer.text
    assert "atl_" not in answer.text  # never a key in the page: the reviewer's is a secret one
    config = page_config(answer.text)
    assert config["paths"] == {
        "images": "/v1/review/images",
        "decisions": "/v1/review/decisions",
        "image": "/v1/review/images/",
        "keyCheck": "/review/key",
    }
    assert config["maxDecisions"] == 200 and config["pageSize"] == 24


def test_the_console_and_its_key_check_are_not_api_operations() -> None:
    paths = client().get("/openapi.json").json()["paths"]
    assert "/review" not in paths and "/review/key" not in paths


def test_the_console_runs_under_the_pages_strict_policy() -> None:
    answer = client(s3_public_endpoint="https://images.shop.example").get("/review")
    policy = dict(part.strip().split(" ", 1) for part in answer.headers["content-security-policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' data: https://images.shop.example"  # where the links point
    assert policy["form-action"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert "<script>" not in answer.text and " on" + "click=" not in answer.text  # no inline script
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_every_control_has_a_label_and_every_button_a_type() -> None:
    page = parsed(client().get("/review").text)
    for control in ("review-key", "f-requester", "f-category", "f-flagged", "reason", "regenerate"):
        assert control in page.ids and control in page.label_for, control
    assert page.buttons_without_type == 0  # no button submits a form by accident
    # outcomes are announced in one polite live region
    assert 'id="announce" class="announce" role="status" aria-live="polite"' in client().get("/review").text


def test_the_help_overlay_lists_exactly_the_keys_the_script_handles() -> None:
    answer = client().get("/review")
    config = page_config(answer.text)
    assert config["keys"] == key_map()
    rows = parsed(answer.text).help_rows
    shown = {label: keys for keys, label in rows}
    for shortcut in SHORTCUTS:
        assert shortcut.label in shown, shortcut
        assert len(shown[shortcut.label]) == len(shortcut.keys)
    assert shown["Approve every selected image"] == ["Shift+A"]
    assert shown["Next image"] == ["→", "j"]
    # the brief's keys, each bound once
    for key, action in {
        "j": "next",
        "k": "previous",
        "a": "approve",
        "r": "reject",
        "g": "regenerate",
    }.items():
        assert key_map()[key] == action
    for key, action in {"x": "select", "A": "approveSelected", "/": "filter", "?": "help"}.items():
        assert key_map()[key] == action


def test_the_category_filter_offers_every_category_of_the_taxonomy() -> None:
    answer = client().get("/review")
    assert [c.value for c in CATEGORY_CHOICES] == [c.slug for c in CATEGORIES]
    for category in CATEGORIES:
        assert f'<option value="{category.slug}">{category.label}</option>' in answer.text
    config = page_config(answer.text)
    assert config["categories"] == {c.slug: c.label for c in CATEGORIES}
    for flag in ('<option value="true">', '<option value="false">', '<option value="">Any</option>'):
        assert flag in answer.text


def test_the_static_files_of_the_console_are_served() -> None:
    checked = client()
    for name in ("review.js", "review-api.js", "review-cards.js", "review-outcomes.js", "review-key.js"):
        answer = checked.get(f"/static/{name}")
        assert answer.status_code == 200 and "javascript" in answer.headers["content-type"], name
    css = checked.get("/static/review.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


# --- the key check ---


def test_a_reviewers_key_is_told_who_it_is_and_the_answer_is_not_cached() -> None:
    status, body, cache = check_key("atl_reviewer")
    assert status == 200 and body == {"key_id": "k-rev", "requester": "shop-a", "admin": False}
    assert cache == "no-store"


def test_an_admin_reviewer_is_told_it_may_choose_the_requester() -> None:
    status, body, _ = check_key("atl_admin")
    assert status == 200 and body == {"key_id": "k-adm", "requester": "ops", "admin": True}


@pytest.mark.parametrize("token", ["atl_submitter", "atl_publishable"])
def test_a_key_without_the_review_scope_cannot_sign_in(token: str) -> None:
    status, body, _ = check_key(token)
    assert status == 403
    assert body["type"] == "https://atelier.dev/problems/key-cannot-review"
    assert "review" in str(body["detail"]) and token not in json.dumps(body)


@pytest.mark.parametrize("token", ["atl_unknown", None])
def test_an_unknown_or_missing_key_is_401(token: str | None) -> None:
    status, _, _ = check_key(token)
    assert status == 401


def test_the_key_check_answers_503_while_the_key_store_is_down() -> None:
    keys = StubKeys()
    keys.down = True
    answer = client(keys).get("/review/key", headers={"Authorization": "Bearer atl_reviewer"})
    assert answer.status_code == 503 and answer.json()["status"] == 503


def test_the_console_itself_needs_no_key_store() -> None:
    keys = StubKeys()
    keys.down = True  # the frame holds no key: only the key check and the API calls need the store
    assert client(keys).get("/review").status_code == 200


def test_the_script_handles_every_action_the_shortcuts_name() -> None:
    script = (STATIC_DIRECTORY / "review.js").read_text()
    block = re.search(r"const ACTIONS = \{(.*?)\n\};", script, re.S)
    assert block is not None
    handled = set(re.findall(r"^\s+(\w+):", block.group(1), re.M))
    assert handled == {shortcut.action for shortcut in SHORTCUTS}


def test_the_page_preloads_every_module_the_console_imports() -> None:
    """A module missing here still loads, one round trip later; one too many is wasted."""
    imported: set[str] = set()
    todo = ["review.js"]
    while todo:
        source = (STATIC_DIRECTORY / todo.pop()).read_text()
        for module in re.findall(r'^import .* from "\./([\w.-]+)";$', source, re.M):
            if module not in imported:
                imported.add(module)
                todo.append(module)
    preloaded = set(
        re.findall(r'<link rel="modulepreload" href="/static/([\w.-]+)">', client().get("/review").text)
    )
    assert preloaded == imported
