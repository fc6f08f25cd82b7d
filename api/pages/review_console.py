"""What the review console offers: its keyboard shortcuts, its filters and the API paths its script
calls, in one place for both the template (the help overlay, the filter form) and the script
(``static/review.js`` reads the same table from ``#page-config``), so the help never lists a key
the script does not handle, nor the other way round. The limits are the review API's own
(``api.review``: decisions per request, the longest reason), never restated: bulk approval sends
``MAX_DECISIONS`` at a time, and the reason field stops at ``MAX_REASON_CHARS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from api.review.resources import MAX_DECISIONS
from serving_contract.taxonomy import CATEGORIES

#: images asked for per page of the grid (the API's ``limit``)
PAGE_SIZE: Final = 24
#: reasons offered as suggestions in the reject dialog (free text is fine)
REASON_SUGGESTIONS: Final = (
    "wrong category",
    "wrong colour",
    "visible defect",
    "too close to another image",
    "blank or washed out",
)


@dataclass(frozen=True)
class Shortcut:
    """One command of the console and the keys (``KeyboardEvent.key`` values) that run it."""

    action: str  #: the script's name for it
    keys: tuple[str, ...]
    label: str  #: what the help overlay says it does


SHORTCUTS: Final = (
    Shortcut("next", ("ArrowRight", "j"), "Next image"),
    Shortcut("previous", ("ArrowLeft", "k"), "Previous image"),
    Shortcut("down", ("ArrowDown",), "Image below"),
    Shortcut("up", ("ArrowUp",), "Image above"),
    Shortcut("approve", ("a",), "Approve the image"),
    Shortcut("reject", ("r",), "Reject the image, with a reason"),
    Shortcut("regenerate", ("g",), "Reject with a reason and regenerate it"),
    Shortcut("select", ("x",), "Select or unselect the image"),
    Shortcut("approveSelected", ("A",), "Approve every selected image"),
    Shortcut("audit", ("t",), "Show the image's audit trail"),
    Shortcut("filter", ("/",), "Go to the filters"),
    Shortcut("help", ("?",), "Show these shortcuts"),
)

#: how the help overlay names keys whose ``key`` value is not what is printed on them
KEY_NAMES: Final = {"ArrowRight": "→", "ArrowLeft": "←", "ArrowDown": "↓", "ArrowUp": "↑", "A": "Shift+A"}


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


#: the category filter: every category of the taxonomy (listings may be of any)
CATEGORY_CHOICES: Final = tuple(Choice(c.slug, c.label) for c in CATEGORIES)
#: the flag filter: the API's ``flagged`` parameter ("" leaves it out)
FLAG_CHOICES: Final = (
    Choice("", "Any"),
    Choice("true", "Gate failed (flagged)"),
    Choice("false", "Gate passed"),
)


def key_map() -> dict[str, str]:
    """``KeyboardEvent.key`` -> action, as the script dispatches them."""
    found: dict[str, str] = {}
    for shortcut in SHORTCUTS:
        for key in shortcut.keys:
            if key in found:
                raise ValueError(f"key {key!r} is bound to both {found[key]} and {shortcut.action}")
            found[key] = shortcut.action
    return found


def script_config(paths: dict[str, str]) -> dict[str, Any]:
    """What ``static/review.js`` reads from the page (JSON in ``#page-config``)."""
    return {
        "paths": paths,
        "keys": key_map(),
        "categories": {c.value: c.label for c in CATEGORY_CHOICES},
        "pageSize": PAGE_SIZE,
        "maxDecisions": MAX_DECISIONS,
    }
