"""The review console (``GET /review``) in a real Chromium, on the real stack.

Listing jobs of shop-a, whose review policy is ``all``, are made by the real listing worker
(Triton, S3) and wait for people; a reviewer signs in with a key entered once and decides from
the keyboard: approve, reject with a reason, select and approve in bulk, reject and regenerate
(the worker makes the image again and it comes back), read an image's audit trail. Each job's
end is checked through the API, and its callbacks at a real HTTP receiver that verifies their
signatures (``callback_receiver``): ``job.review_required``, then ``job.approved`` or
``job.rejected``. The screenshots ``docs/screenshots/review-*.png`` come from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, Request, expect

from api.database import Database
from api.keys.model import Scope
from api.review.policies import PolicyStore
from core.contracts.jobs import GateCheck, GateReport, JobEventType, JobRecord, JobState, ReviewPolicy
from core.jobs.machine import Mode
from embedded.receiver import CallbackReceiver
from quality.settings import GateSettings
from tests.browser.conftest import BrowserStack

pytestmark = [pytest.mark.browser, pytest.mark.triton, pytest.mark.slow]

#: how long a job may take to be made, or an image to be made again, on a busy machine (s)
JOB_TIMEOUT_S = 120.0
#: the same for the page to show it (ms, Playwright's unit)
SHOWN_TIMEOUT_MS = 30_000
REQUESTER = "shop-a"
#: the gate's colour threshold (CIE76 distance), as the service reads it
MAX_COLOUR_DELTA_E = GateSettings().max_colour_delta_e
Screenshots = Callable[[Page, str], Path]


# --- the API, as the requester and the reviewer use it ---


def api_get(stack: BrowserStack, token: str, path: str, **params: Any) -> dict[str, Any]:
    answer = httpx.get(
        f"{stack.api_url}{path}", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def submit_listing(
    stack: BrowserStack, receiver: CallbackReceiver, *, category: str, colour: str, variants: int
) -> str:
    """A listing job of shop-a, called back at ``receiver``; its id."""
    body = {
        "listing_id": f"sku-{category}-{colour}",
        "attributes": {"category": category, "colour": colour},
        "variants": variants,
        "seed": 1234,
        "callback": {"url": receiver.url_for(REQUESTER)},
    }
    answer = httpx.post(
        f"{stack.api_url}/v1/listings",
        json=body,
        headers={"Authorization": f"Bearer {stack.secret}"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def job_state(stack: BrowserStack, job_id: str) -> str:
    state: str = api_get(stack, stack.secret, f"/v1/jobs/{job_id}")["state"]
    return state


def wait_for_state(stack: BrowserStack, job_id: str, state: str) -> None:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    seen = job_state(stack, job_id)
    while seen != state and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = job_state(stack, job_id)
    assert seen == state, f"job {job_id} is {seen}, not {state}, after {JOB_TIMEOUT_S} s"


def pending_item(stack: BrowserStack, job_id: str, variant: int) -> dict[str, Any] | None:
    """The reviewer's view of one image while it is pending, else ``None``."""
    page = api_get(stack, stack.reviewer, "/v1/review/images", status="pending", limit=200)
    return next((i for i in page["items"] if i["job_id"] == job_id and i["variant"] == variant), None)


def callbacks_of(receiver: CallbackReceiver, job_id: str) -> list[JobEventType]:
    """The verified events ``job_id``'s callbacks brought, in the order they arrived."""
    found = []
    for received in receiver.received:
        assert received.event is not None, f"a callback did not verify: {received.error}"
        if received.event.data["job_id"] == job_id:
            found.append(received.event.type)
    return found


def wait_for_callback(receiver: CallbackReceiver, job_id: str, event: JobEventType) -> dict[str, Any]:
    """The data of ``job_id``'s ``event`` callback, once it arrived."""

    def arrived(received: list[Any]) -> bool:
        return any(r.event and r.event.type is event and r.event.data["job_id"] == job_id for r in received)

    assert receiver.wait_for(arrived, JOB_TIMEOUT_S), (
        f"no {event} for {job_id}: {callbacks_of(receiver, job_id)}"
    )
    data: dict[str, Any] = next(
        r.event.data
        for r in receiver.received
        if r.event and r.event.type is event and r.event.data["job_id"] == job_id
    )
    return data


# --- the page, as the reviewer drives it ---


def open_console(page: Page, stack: BrowserStack) -> None:
    response = page.goto(f"{stack.api_url}/review")
    assert response is not None and response.status == 200
    expect(page.locator("html")).to_have_attribute("data-ready", "true")


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("Reviewer's API key").fill(token)
    page.keyboard.press("Enter")
    expect(page.locator("#console")).to_be_visible()


def card(page: Page, job_id: str, variant: int) -> Locator:
    return page.locator(f'#grid > li[data-job="{job_id}"][data-variant="{variant}"]')


def go_to(page: Page, job_id: str, variant: int) -> Locator:
    """Move to the image's card with j and k only; the card has the focus after."""
    target = card(page, job_id, variant)
    expect(target).to_be_visible(timeout=SHOWN_TIMEOUT_MS)
    cards = page.locator("#grid > li")
    wanted = target.evaluate("li => [...li.parentElement.children].indexOf(li)")
    at = cards.evaluate_all("lis => lis.findIndex((li) => li.classList.contains('current'))")
    page.locator("#grid > li.current .card").focus() if at >= 0 else cards.first.locator(".card").focus()
    at = max(at, 0)
    for _ in range(abs(wanted - at)):
        page.keyboard.press("j" if wanted > at else "k")
    expect(target.locator(".card")).to_be_focused()
    return target


def apply_filters(page: Page) -> None:
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#grid")).to_have_attribute("aria-busy", "false")


def reject_with_keyboard(page: Page, key: str, reason: str) -> None:
    """``r`` or ``g`` on the focused card, then the reason, then Enter; returns once the
    card shows what came of it."""
    focused = page.locator("#grid > li:has(.card:focus)")
    decided = card(
        page, str(focused.get_attribute("data-job")), int(str(focused.get_attribute("data-variant")))
    )
    page.keyboard.press(key)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(page.get_by_label("Reason")).to_be_focused()
    page.keyboard.type(reason)
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(decided.locator(".outcome")).to_contain_text("Rejected")


def requests_made(page: Page) -> list[Request]:
    made: list[Request] = []
    page.on("request", lambda request: made.append(request))
    return made


# --- fixtures ---


@pytest.fixture(scope="module")
def reviewed_requester(browser_stack: BrowserStack) -> Iterator[str]:
    """shop-a's jobs wait for people from now on (policy ``all``, as ``atelier review policy``
    sets it)."""
    policies = PolicyStore(Database(browser_stack.keys.engine))
    policies.set(REQUESTER, ReviewPolicy.ALL)
    yield REQUESTER
    policies.set(REQUESTER, ReviewPolicy.AUTO)


# --- the tests ---


def test_the_key_is_entered_once_checked_and_kept_in_the_tab_never_in_a_url(
    page: Page, browser_stack: BrowserStack, screenshots: Screenshots
) -> None:
    made = requests_made(page)
    open_console(page, browser_stack)
    key_field = page.get_by_label("Reviewer's API key")
    expect(key_field).to_be_focused()
    screenshots(page, "review-sign-in")

    # a key of the shop without the review scope is refused, and kept nowhere
    key_field.fill(browser_stack.secret)
    page.keyboard.press("Enter")
    expect(page.locator("#review-key-error")).to_have_text(
        "this key lacks the 'review' scope: sign in with a reviewer's key"
    )
    expect(key_field).to_have_value("")
    assert page.evaluate("sessionStorage.length + localStorage.length") == 0

    sign_in(page, browser_stack.reviewer)
    expect(page.locator("#key-status-text")).to_contain_text(f"({REQUESTER})")
    expect(page.locator("#requester-field")).to_be_hidden()  # not an admin key
    assert page.evaluate("localStorage.length") == 0  # a secret key: this tab only
    assert page.evaluate("sessionStorage.getItem('atelier.review.key')") == browser_stack.reviewer

    # a reload keeps it; another tab asks again
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-ready", "true")
    expect(page.locator("#console")).to_be_visible()
    other = page.context.new_page()
    other.goto(f"{browser_stack.api_url}/review")
    expect(other.locator("html")).to_have_attribute("data-ready", "true")
    expect(other.get_by_label("Reviewer's API key")).to_be_visible()
    other.close()

    # the key went in headers only
    calls = [r for r in made if "/v1/review/" in r.url or r.url.endswith("/review/key")]
    assert calls and all(r.headers.get("authorization", "").startswith("Bearer ") for r in calls)
    assert not [r.url for r in made if browser_stack.reviewer in r.url or browser_stack.secret in r.url]

    page.get_by_role("button", name="Sign out").click()
    expect(key_field).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_reviewer_decides_from_the_keyboard_and_the_requester_is_called_back(
    page: Page,
    browser_stack: BrowserStack,
    callback_receiver: CallbackReceiver,
    reviewed_requester: str,
    screenshots: Screenshots,
) -> None:
    submit = lambda category, colour, variants: submit_listing(  # noqa: E731
        browser_stack, callback_receiver, category=category, colour=colour, variants=variants
    )
    approve_one = submit("dress", "navy", 2)  # v0 approved, v1 rejected: approved
    bulk = submit("coat", "red", 2)  # both approved at once: approved
    remade = submit("pullover", "green", 2)  # v0 rejected, v1 regenerated then approved: approved
    reject_all = submit("bag", "black", 1)  # rejected: rejected
    jobs = (approve_one, bulk, remade, reject_all)
    for job_id in jobs:
        wait_for_state(browser_stack, job_id, "awaiting_review")
        data = wait_for_callback(callback_receiver, job_id, JobEventType.REVIEW_REQUIRED)
        assert {image["review"]["status"] for image in data["images"]} == {"pending"}
        assert "results" not in data  # no link before people approve

    open_console(page, browser_stack)
    sign_in(page, browser_stack.reviewer)
    expect(page.locator("#grid > li")).to_have_count(7, timeout=SHOWN_TIMEOUT_MS)
    first = card(page, approve_one, 0)
    expect(first.locator(".card-title")).to_have_text("Navy dress · image 0")
    expect(first.locator(".card-attrs")).to_contain_text("sku-dress-navy")
    expect(first.locator(".others-list li")).to_have_count(1)  # the job's other image
    assert first.locator(".card-img").evaluate("img => img.complete && img.naturalWidth") > 0
    screenshots(page, "review-grid")

    # approve one image, reject another, from the keyboard
    go_to(page, approve_one, 0)
    page.keyboard.press("a")
    expect(card(page, approve_one, 0).locator(".outcome")).to_have_text(
        "Approved. The job waits for its other images."
    )
    expect(card(page, approve_one, 1).locator(".card")).to_be_focused()  # on to the next one
    page.keyboard.press("r")
    expect(page.get_by_label("Reason")).to_be_focused()
    page.keyboard.type("wrong colour")
    screenshots(page, "review-reject-reason")
    page.keyboard.press("Enter")
    expect(card(page, approve_one, 1).locator(".outcome")).to_have_text(
        "Rejected (wrong colour). The job is approved: its approved images get links."
    )
    expect(page.get_by_role("status").first).to_contain_text("Navy dress · image 1: Rejected (wrong colour)")

    # bulk: the coat's two images, found with the category filter, selected with x, approved with A
    page.keyboard.press("/")
    expect(page.get_by_label("Category")).to_be_focused()
    page.get_by_label("Category").select_option("coat")
    apply_filters(page)
    expect(page.locator("#grid > li")).to_have_count(2)
    go_to(page, bulk, 0)
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    expect(page.get_by_role("button", name="Approve selected (2)")).to_be_enabled()
    page.keyboard.press("A")
    expect(page.locator("#announce")).to_have_text("Approved 2 images.")
    for variant in (0, 1):
        expect(card(page, bulk, variant)).to_have_attribute("data-outcome", "applied")

    # reject one image of the pullover; reject the other and have it made again
    page.get_by_label("Category").select_option("")
    apply_filters(page)
    expect(page.locator("#grid > li")).to_have_count(3)  # what is still pending
    go_to(page, remade, 0)
    reject_with_keyboard(page, "r", "visible defect")
    go_to(page, remade, 1)
    before = pending_item(browser_stack, remade, 1)
    assert before is not None
    reject_with_keyboard(page, "g", "too close to another image")
    expect(card(page, remade, 1).locator(".outcome")).to_contain_text("regenerating")
    screenshots(page, "review-decided")
    deadline = time.monotonic() + JOB_TIMEOUT_S
    again = pending_item(browser_stack, remade, 1)
    while again is None and time.monotonic() < deadline:
        time.sleep(0.5)
        again = pending_item(browser_stack, remade, 1)
    assert again is not None, "the image was not made again"
    assert job_state(browser_stack, remade) == "awaiting_review"  # the remake waits for people too

    # the remade image is back: approve it, and read its trail
    page.get_by_role("button", name="Reload").click()
    expect(page.locator("#grid > li")).to_have_count(2)  # the remake and the bag
    go_to(page, remade, 1)
    page.keyboard.press("a")
    expect(card(page, remade, 1).locator(".outcome")).to_have_text(
        "Approved. The job is approved: its approved images get links."
    )
    go_to(page, remade, 1)
    page.keyboard.press("t")
    audit = page.get_by_role("complementary", name="Audit trail")
    expect(audit).to_be_visible()
    expect(audit.locator("#audit-state")).to_have_text("2 decisions recorded.")
    entries = audit.locator("#audit-entries li .audit-what")
    expect(entries).to_have_text(["Rejected, regenerate: too close to another image", "Approved"])
    reviewer_id = browser_stack.keys.authenticate(browser_stack.reviewer)
    assert reviewer_id is not None
    expect(audit.locator("#audit-entries li .audit-meta").first).to_contain_text(f"by {reviewer_id.key_id}")
    screenshots(page, "review-audit")
    page.keyboard.press("Escape")
    expect(audit).to_be_hidden()
    expect(card(page, remade, 1).locator(".card")).to_be_focused()

    # the last one: reject the bag
    go_to(page, reject_all, 0)
    reject_with_keyboard(page, "r", "blank or washed out")
    expect(card(page, reject_all, 0).locator(".outcome")).to_have_text(
        "Rejected (blank or washed out). The job is rejected."
    )

    # the jobs ended as decided, and the requester was told once each, after review_required
    ends = {approve_one: "approved", bulk: "approved", remade: "approved", reject_all: "rejected"}
    for job_id, state in ends.items():
        assert job_state(browser_stack, job_id) == state
        event = JobEventType.APPROVED if state == "approved" else JobEventType.REJECTED
        wait_for_callback(callback_receiver, job_id, event)
        told = callbacks_of(callback_receiver, job_id)
        assert told.count(JobEventType.REVIEW_REQUIRED) == 1 and told.count(event) == 1, told
        assert told.index(JobEventType.REVIEW_REQUIRED) < told.index(event), told
        assert JobEventType.SUCCEEDED not in told, told
    approved = wait_for_callback(callback_receiver, approve_one, JobEventType.APPROVED)
    assert [image["variant"] for image in approved["results"]] == [0]  # only what people approved
    assert [(image["variant"], image["review"]["reason"]) for image in approved["rejected"]] == [
        (1, "wrong colour")
    ]
    remade_end = wait_for_callback(callback_receiver, remade, JobEventType.APPROVED)
    assert [image["variant"] for image in remade_end["results"]] == [1]
    rejected = wait_for_callback(callback_receiver, reject_all, JobEventType.REJECTED)
    assert [image["review"]["reason"] for image in rejected["images"]] == ["blank or washed out"]
    # and the public resource links exactly the approved images
    public = api_get(browser_stack, browser_stack.secret, f"/v1/jobs/{approve_one}")
    assert [output["variant"] for output in public["outputs"]] == [0]


def test_a_decision_on_a_job_canceled_meanwhile_shows_the_conflict(
    page: Page,
    browser_stack: BrowserStack,
    callback_receiver: CallbackReceiver,
    reviewed_requester: str,
    screenshots: Screenshots,
) -> None:
    job_id = submit_listing(browser_stack, callback_receiver, category="sandal", colour="white", variants=1)
    wait_for_state(browser_stack, job_id, "awaiting_review")
    open_console(page, browser_stack)
    sign_in(page, browser_stack.reviewer)
    go_to(page, job_id, 0)

    canceled = httpx.post(
        f"{browser_stack.api_url}/v1/jobs/{job_id}/cancel",
        headers={"Authorization": f"Bearer {browser_stack.secret}"},
        timeout=10,
    )
    assert canceled.status_code == 200, canceled.text
    page.keyboard.press("a")
    outcome = card(page, job_id, 0).locator(".outcome")
    expect(outcome).to_contain_text("Not applied (conflict)")
    expect(outcome).to_contain_text("canceled")
    expect(card(page, job_id, 0).get_by_role("button", name="Approve")).to_be_disabled()
    screenshots(page, "review-conflict")
    assert job_state(browser_stack, job_id) == "canceled"
    wait_for_callback(callback_receiver, job_id, JobEventType.CANCELED)
    assert JobEventType.APPROVED not in callbacks_of(callback_receiver, job_id)
    # and nothing was audited as applied
    page.keyboard.press("t")
    expect(page.locator("#audit-state")).to_have_text("No decision recorded yet.")


def gate_report(*, colour_score: float) -> GateReport:
    """A report as the quality gate writes one (``quality``'s checks; ``ATELIER_GATE_*`` thresholds)."""
    colour_passed = colour_score <= MAX_COLOUR_DELTA_E
    return GateReport(
        passed=colour_passed,
        checks=[
            GateCheck(name="category", score=0.91, threshold=0.099, passed=True),
            GateCheck(name="colour", score=colour_score, threshold=MAX_COLOUR_DELTA_E, passed=colour_passed),
            GateCheck(name="duplicate", score=64, threshold=15, passed=True),
        ],
        tries=1 if colour_passed else 3,
        seed=1234,
    )


def with_gate_reports(stack: BrowserStack, job_id: str, reports: dict[int, GateReport]) -> None:
    """Put ``reports`` on the job's stored images, through the job store (real Redis), in place of
    the worker's gate reports: the real gate passes nearly every image these models make, and
    the test needs one image it failed, on a known check with a known score."""

    def change(record: JobRecord) -> JobRecord:
        results = [i.model_copy(update={"gate": reports.get(i.variant, i.gate)}) for i in record.results]
        return record.model_copy(update={"results": results})

    written = stack.stack.producer.store.write_change(
        job_id, change, mode=Mode.UPDATE, only_from=(JobState.AWAITING_REVIEW,)
    )
    assert written is not None, f"job {job_id} is not awaiting review"


def test_the_gates_scores_are_shown_against_their_thresholds_and_filter_the_grid(
    page: Page,
    browser_stack: BrowserStack,
    callback_receiver: CallbackReceiver,
    reviewed_requester: str,
    screenshots: Screenshots,
) -> None:
    job_id = submit_listing(browser_stack, callback_receiver, category="shirt", colour="purple", variants=2)
    wait_for_state(browser_stack, job_id, "awaiting_review")
    with_gate_reports(
        browser_stack, job_id, {0: gate_report(colour_score=9.5), 1: gate_report(colour_score=31.2)}
    )
    open_console(page, browser_stack)
    sign_in(page, browser_stack.reviewer)

    flagged = card(page, job_id, 1)
    expect(flagged.locator(".gate-verdict")).to_have_text("Gate failed after 3 tries: colour")
    rows = flagged.locator(".gate-checks tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(1).locator("th, td")).to_have_text(["colour", "31.2", "24.8", "failed"])  # vs threshold
    expect(rows.nth(1)).to_have_class("failed")
    expect(rows.nth(0).locator("th, td")).to_have_text(["category", "0.91", "0.099", "passed"])
    expect(flagged.locator(".others-list")).to_contain_text("Image 0: pending · gate passed")
    expect(card(page, job_id, 0).locator(".gate-verdict")).to_have_text("Gate passed")
    screenshots(page, "review-gate")

    for value, shown, hidden in (("true", 1, 0), ("false", 0, 1)):
        page.get_by_label("Gate").select_option(value)
        apply_filters(page)
        expect(card(page, job_id, shown)).to_be_visible()
        expect(card(page, job_id, hidden)).to_have_count(0)
        for each in page.locator("#grid > li").all():  # and only images the filter names
            assert ("flagged" in (each.get_attribute("class") or "").split()) is (value == "true")

    # the help overlay, on ?, lists the keys
    page.locator("#grid > li .card").first.focus()
    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("Approve every selected image")
    screenshots(page, "review-help")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()
    expect(page.locator("#grid > li .card").first).to_be_focused()  # back where it was

    # leave nothing pending for the next test
    page.get_by_label("Gate").select_option("")
    apply_filters(page)
    go_to(page, job_id, 0)
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    page.keyboard.press("A")
    expect(page.locator("#announce")).to_have_text("Approved 2 images.")
    wait_for_callback(callback_receiver, job_id, JobEventType.APPROVED)


def test_an_admin_reviewer_chooses_whose_images_to_see(
    page: Page,
    browser_stack: BrowserStack,
    callback_receiver: CallbackReceiver,
    reviewed_requester: str,
) -> None:
    job_id = submit_listing(browser_stack, callback_receiver, category="sneaker", colour="grey", variants=1)
    wait_for_state(browser_stack, job_id, "awaiting_review")
    _, admin = browser_stack.keys.create("ops", scopes=[Scope.REVIEW, Scope.ADMIN], name="review lead")
    open_console(page, browser_stack)
    sign_in(page, admin)
    expect(page.locator("#key-status-text")).to_contain_text("(ops, admin)")
    requester = page.get_by_label("Requester")
    expect(requester).to_be_visible()
    requester.fill(REQUESTER)
    apply_filters(page)
    shown = card(page, job_id, 0)
    expect(shown).to_be_visible(timeout=SHOWN_TIMEOUT_MS)
    expect(shown.locator(".card-attrs")).to_contain_text(f"Requester{REQUESTER}")
