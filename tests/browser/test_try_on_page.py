"""The shopper's try-on page (``GET /try-on``) in a real Chromium, on the real stack.

Every test drives the page as a person would (labels, keyboard, clicks) against ``atelier api
serve`` with real workers, Triton, S3, Redis, RabbitMQ and PostgreSQL behind it
(``tests/browser/conftest.py``), and the screenshots in ``docs/screenshots/`` come from here.
Two ways the page gets its key are covered: the operator's (``ATELIER_TRYON_PAGE_KEY``) and one
entered once; the job's events are read with ``fetch()`` and the key in ``Authorization``
(``api/pages/static/sse.js``), never with the key in a URL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.browser.conftest import BrowserStack

pytestmark = [pytest.mark.browser, pytest.mark.triton, pytest.mark.slow]

#: how long a picture may take to arrive on a busy machine (ms, Playwright's unit)
PICTURE_TIMEOUT_MS = 60_000
METRIC = {"Height": "172", "Weight": "68", "Chest": "94", "Waist": "78", "Hips": "98"}
IMPERIAL = {"Height": "67", "Weight": "150", "Chest": "37", "Waist": "31", "Hips": "39"}
#: the page records every text its progress line shows (an init script: not subject to the
#: page's Content Security Policy, and in place before the page's own script runs)
RECORD_PROGRESS = """
window.__progress = [];
document.addEventListener("DOMContentLoaded", () => {
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) window.__progress.push(node.textContent);
    }
  }).observe(document.getElementById("progress"), { childList: true });
});
"""


@pytest.fixture(scope="module")
def operator_api(browser_stack: BrowserStack) -> Iterator[str]:
    """The API with the try-on page's key configured by the operator (a publishable one)."""
    env = {"ATELIER_TRYON_PAGE_KEY": browser_stack.publishable}
    with browser_stack.serve_api(env, label="api-page-key") as url:
        yield url


def open_try_on(page: Page, base_url: str) -> None:
    page.add_init_script(RECORD_PROGRESS)
    response = page.goto(f"{base_url}/try-on")
    assert response is not None and response.status == 200
    expect(page.locator("html")).to_have_attribute("data-ready", "true")  # the script ran


def fill_measurements(page: Page, values: dict[str, str]) -> None:
    for label, value in values.items():
        page.get_by_label(label, exact=False).first.fill(value)


def expect_picture(page: Page) -> None:
    """The picture arrived: its link came in an event, the image loaded, and the page said so."""
    expect(page.locator("#result")).to_have_attribute("data-state", "shown", timeout=PICTURE_TIMEOUT_MS)
    picture = page.get_by_role("img", name="Try-on:")
    expect(picture).to_be_visible()
    assert picture.evaluate("img => img.complete && img.naturalWidth") > 0
    expect(page.get_by_role("status")).to_have_text("Your try-on is ready.")


def progress_seen(page: Page) -> list[str]:
    seen: list[str] = page.evaluate("window.__progress")
    return seen


def requests_made(page: Page) -> list[Request]:
    made: list[Request] = []
    page.on("request", lambda request: made.append(request))
    return made


def job(base_url: str, token: str, job_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    answer = httpx.get(f"{base_url}/v1/jobs/{job_id}", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


# --- the whole journey ---


def test_a_shopper_with_only_a_keyboard_tries_on_a_garment_in_metric_and_sees_the_picture_arrive(
    page: Page, operator_api: str, browser_stack: BrowserStack, screenshots: Callable[[Page, str], Path]
) -> None:
    made = requests_made(page)
    open_try_on(page, operator_api)
    expect(page.locator("#connect")).to_be_hidden()  # the operator configured the key
    page.get_by_label("Height").focus()
    for value in METRIC.values():  # height, weight, chest, waist, hips, one Tab apart
        page.keyboard.type(value)
        page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # garment by category and colour (checked) -> category
    expect(page.get_by_label("Category", exact=True)).to_be_focused()
    for _ in range(3):  # T-shirt/top -> Trouser -> Pullover -> Dress
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")  # -> the colour swatches (black checked)
    for _ in range(8):  # black ... navy
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Tab")  # -> sizes (M checked)
    page.keyboard.press("ArrowRight")  # L
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Try it on")).to_be_focused()
    expect(page.get_by_label("Category", exact=True)).to_have_value("dress")
    expect(page.get_by_role("radio", name="navy")).to_be_checked()
    expect(page.get_by_role("radio", name="L", exact=True)).to_be_checked()
    screenshots(page, "try-on-form-metric")

    with page.expect_response("**/v1/tryons") as submitted:
        page.keyboard.press("Enter")
    assert submitted.value.status == 202
    job_id = submitted.value.json()["id"]
    expect_picture(page)
    screenshots(page, "try-on-result")

    # the progress went through each state, as the events came
    seen = progress_seen(page)
    for text in ("Sending your request…", "Queued: waiting for a free renderer…", "Rendering your try-on…"):
        assert text in seen, seen
    assert page.get_by_role("img", name="Try-on:").get_attribute("alt") == "Try-on: navy dress in size L"
    # the shop sees the job the page made, as the page's tenant's
    found = job(browser_stack.api_url, browser_stack.secret, job_id)
    assert found["state"] == "succeeded" and found["kind"] == "tryon" and found["requester"] == "shop-a"
    assert found["subject"] == page.evaluate("localStorage.getItem('atelier.tryon.shopper')")
    # the stream was read with the key in a header, and no URL ever carried the key
    events = [r for r in made if r.url.endswith(f"/v1/jobs/{job_id}/events")]
    assert events and events[0].headers["authorization"] == f"Bearer {browser_stack.publishable}"
    assert not [r.url for r in made if browser_stack.publishable in r.url]


def test_a_key_entered_once_is_checked_then_kept_and_an_imperial_try_on_arrives(
    page: Page, browser_stack: BrowserStack, screenshots: Callable[[Page, str], Path]
) -> None:
    open_try_on(page, browser_stack.api_url)  # no key configured: the page asks for one
    key_field = page.get_by_label("Publishable API key")
    expect(key_field).to_be_visible()

    # a secret key is refused, and kept nowhere
    key_field.fill(browser_stack.secret)
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#page-key-error")).to_contain_text("a secret key must never reach a browser")
    expect(key_field).to_have_attribute("aria-invalid", "true")
    expect(key_field).to_have_value("")
    assert page.evaluate("localStorage.getItem('atelier.tryon.key')") is None
    screenshots(page, "try-on-connect-key")

    # a publishable key is kept, and still in use after a reload
    key_field.fill(browser_stack.publishable)
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#connect")).to_be_hidden()
    key_id = browser_stack.publishable.split("_")[1]
    expect(page.locator("#key-status-text")).to_have_text(f"Connected with key atl_{key_id}_…")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-ready", "true")
    expect(page.locator("#connect")).to_be_hidden()

    # switching units converts what was typed and shows the imperial ranges
    page.get_by_label("Height").fill("172")
    page.get_by_label("Imperial (in, lb)").check()
    expect(page.get_by_label("Height")).to_have_value("67.7")
    expect(page.locator("#m-height-range")).to_have_text("57.1–80.7 in")
    expect(page.locator("#m-weight-range")).to_have_text("88.2–308.6 lb")
    fill_measurements(page, IMPERIAL)
    page.get_by_label("Category", exact=True).select_option("coat")
    page.get_by_text("green", exact=True).click()
    page.get_by_role("radio", name="S", exact=True).check()
    screenshots(page, "try-on-form-imperial")

    with page.expect_request("**/v1/tryons") as sent:
        page.get_by_role("button", name="Try it on").click()
    body = sent.value.post_data_json
    assert body is not None
    assert body["measurements"] == {
        "unit_system": "imperial",
        **{label.lower(): float(value) for label, value in IMPERIAL.items()},
    }
    assert body["garment"] == {"source": "attributes", "category": "coat", "colour": "green"}
    assert body["size"] == "S" and "requester" not in body
    expect_picture(page)
    assert page.get_by_role("img", name="Try-on:").get_attribute("alt") == "Try-on: green coat in size S"


# --- errors where the shopper looks ---


def test_an_out_of_range_measurement_is_marked_next_to_its_field_and_nothing_is_sent(
    page: Page, operator_api: str, screenshots: Callable[[Page, str], Path]
) -> None:
    made = requests_made(page)
    open_try_on(page, operator_api)
    fill_measurements(page, {**METRIC, "Height": "300"})
    page.get_by_role("button", name="Try it on").click()
    height = page.get_by_label("Height")
    expect(page.locator("#m-height-error")).to_have_text("Must be within 145–205 cm; got 300 cm.")
    expect(height).to_have_attribute("aria-invalid", "true")
    expect(height).to_be_focused()
    assert "m-height-error" in (height.get_attribute("aria-describedby") or "")
    expect(page.get_by_label("Weight")).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("status")).to_have_text("Please correct the marked fields.")
    screenshots(page, "try-on-field-error")

    # imperial is checked as the server converts it: 57 in is 144.78 cm (refused), 57.1 in is
    # 145.034 cm (allowed)
    page.get_by_label("Imperial (in, lb)").check()
    fill_measurements(page, {**IMPERIAL, "Height": "57"})
    page.get_by_role("button", name="Try it on").click()
    expect(page.locator("#m-height-error")).to_have_text("Must be within 57.1–80.7 in; got 57 in.")
    assert not [r for r in made if r.url.endswith("/v1/tryons")]
    page.get_by_label("Height").fill("57.1")
    with page.expect_response("**/v1/tryons") as submitted:
        page.get_by_role("button", name="Try it on").click()
    assert submitted.value.status == 202
    expect(page.locator("#m-height-error")).to_be_hidden()
    expect(page.get_by_label("Height")).not_to_have_attribute("aria-invalid", "true")
    expect_picture(page)


def test_the_servers_problem_is_shown_next_to_the_field_it_names_and_a_listing_garment_works(
    page: Page, operator_api: str, browser_stack: BrowserStack
) -> None:
    # a listing job of the page's shop (shop-a), finished before the shopper picks it
    listing = httpx.post(
        f"{browser_stack.api_url}/v1/listings",
        headers={"Authorization": f"Bearer {browser_stack.secret}", "Prefer": "wait=60"},
        json={"listing_id": "SKU-7", "attributes": {"category": "shirt", "colour": "blue"}, "variants": 2},
        timeout=70,
    )
    assert listing.status_code == 200 and listing.json()["state"] == "succeeded", listing.text
    open_try_on(page, operator_api)
    fill_measurements(page, METRIC)
    page.get_by_label("A product image (listing job)").check()
    job_field = page.get_by_label("Listing job id")
    job_field.fill("0" * 32)  # well-formed, so only the server can refuse it: no such job
    with page.expect_response("**/v1/tryons") as answered:
        page.get_by_role("button", name="Try it on").click()
    assert answered.value.status == 422
    expect(page.locator("#g-job-error")).to_have_text("no listing job with this id for this key's requester")
    expect(job_field).to_have_attribute("aria-invalid", "true")
    expect(job_field).to_be_focused()
    expect(page.get_by_role("status")).to_have_text("Your request was not accepted: see the marked fields.")

    # the shop's own listing job, its second image: the picture arrives
    job_field.fill(listing.json()["id"])
    page.get_by_label("Image of that job").fill("1")
    with page.expect_request("**/v1/tryons") as sent:
        page.get_by_role("button", name="Try it on").click()
    body = sent.value.post_data_json
    assert body is not None and body["garment"] == {
        "source": "listing",
        "job_id": listing.json()["id"],
        "variant": 1,
    }
    expect(page.locator("#g-job-error")).to_be_hidden()
    expect_picture(page)


# --- the event stream ---


def test_a_stream_that_drops_after_the_first_event_is_resumed_with_last_event_id(
    page: Page, operator_api: str
) -> None:
    """The first events request is answered with the queued event alone, then the connection
    ends (as a proxy or the server's time limit would end it); the page reconnects with
    ``Last-Event-ID`` to the real API and the picture still arrives."""
    asked: list[dict[str, str]] = []

    def cut_short(route: Route) -> None:
        asked.append(route.request.headers)
        if len(asked) > 1:
            route.continue_()
            return
        job_id = route.request.url.split("/")[-2]
        data = {"job_id": job_id, "kind": "tryon", "state": "queued"}
        queued = json.dumps({"type": "job.queued", "timestamp": "2025-01-01T00:00:00Z", "data": data})
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream"},
            body=f"event: job.queued\r\nid: 1\r\ndata: {queued}\r\n\r\n",
        )

    page.route("**/v1/jobs/*/events", cut_short)
    open_try_on(page, operator_api)
    fill_measurements(page, METRIC)
    page.get_by_role("button", name="Try it on").click()
    expect_picture(page)
    assert "last-event-id" not in asked[0]
    assert asked[1]["last-event-id"] == "1"
    assert "Connection lost: reconnecting…" in progress_seen(page)


def test_the_pages_sse_parser_and_error_paths_in_the_browser(page: Page, operator_api: str) -> None:
    """``sse.js`` parses frames split anywhere (a CRLF across chunks, comments, several data
    lines, an unfinished last frame) and ``problems.js`` maps pydantic's loc to the form's
    fields, union tags left out."""
    open_try_on(page, operator_api)
    parsed = page.evaluate(
        """async () => {
          const { parse } = await import("/static/sse.js");
          const chunks = ["data: a\\r", "\\nid: 1\\r\\n\\r", "\\n: ping\\r\\n\\r\\n",
                          "event: job.x\\ndata: b\\ndata:c\\n\\n", "retry: 250\\n\\ndata: unfinished"];
          const body = new ReadableStream({ start(controller) {
            for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
            controller.close();
          } });
          const found = [];
          for await (const event of parse(body)) found.push(event);
          return found;
        }"""
    )
    assert [e for e in parsed if e["data"] is not None] == [
        {"type": "message", "id": "1", "retry": None, "data": "a"},
        {"type": "job.x", "id": None, "retry": None, "data": "b\nc"},
    ]
    assert [e["retry"] for e in parsed if e["data"] is None] == [None, 250]
    paths = page.evaluate(
        """async () => {
          const { fieldPath } = await import("/static/problems.js");
          return [["body", "garment", "attributes", "colour"], ["body", "garment", "listing", "job_id"],
                  ["body", "measurements", "height"], ["body", "size"], ["query", "limit"]].map(fieldPath);
        }"""
    )
    assert paths == ["garment.colour", "garment.job_id", "measurements.height", "size", "query.limit"]


# --- the page never holds a secret key ---


def test_a_page_configured_with_a_secret_key_is_not_served(page: Page, browser_stack: BrowserStack) -> None:
    env = {"ATELIER_TRYON_PAGE_KEY": browser_stack.secret}
    with browser_stack.serve_api(env, label="api-secret-page-key") as url:
        response = page.goto(f"{url}/try-on")
        assert response is not None and response.status == 500
        expect(page.get_by_role("heading", level=1)).to_have_text("This page is not available")
        assert browser_stack.secret not in page.content()
    log = (browser_stack.stack.logs / "api-secret-page-key.log").read_text()
    assert "a secret key must never reach a browser" in log
    assert browser_stack.secret not in log
