"""Receiver side of Atelier's callbacks: check a Standard Webhooks signature, get the ``JobEvent``.

Pass the raw request body (bytes, before any JSON parsing), the request headers and your
secret (``whsec_...``), or several while rotating::

    event = verify(request.body, request.headers, ["whsec_new...", "whsec_old..."])
    if seen_before(request.headers["webhook-id"]):  # redeliveries repeat the id
        return 200

Signatures are computed with ``standardwebhooks.Webhook.sign``; the timestamp is checked here
instead of in ``Webhook.verify``, whose 5-minute window is fixed, so ``tolerance_s`` is yours.
See ``docs/callbacks.md``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook

from core.contracts.jobs import JobEvent
from core.errors import ErrorCode, PermanentError

#: default replay window: a timestamp further than this from now (either way) is refused
DEFAULT_TOLERANCE_S = 300
#: the signature scheme Atelier signs with (HMAC-SHA256)
SIGNATURE_VERSION = "v1"


class WebhookVerificationError(PermanentError, ValueError):
    """The callback is not authentic, is stale, or is not a ``JobEvent``; the message says which.

    A ``ValueError`` too, as it was before Atelier's errors had one root.
    """

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.WEBHOOK_VERIFICATION_FAILED, message)


def verify(
    body: bytes | str,
    headers: Mapping[str, str] | Any,
    secrets: str | Sequence[str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> JobEvent:
    """The ``JobEvent`` in ``body`` if one of ``secrets`` signed it within ``tolerance_s``.

    ``headers`` is any mapping with ``items()`` (names case-insensitive); ``now`` (Unix seconds)
    is for tests. Raises ``WebhookVerificationError``.
    """
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if not lowered.get(h)]
    if missing:
        raise WebhookVerificationError(f"missing header(s): {', '.join(missing)}")
    msg_id, signature_header = lowered["webhook-id"], lowered["webhook-signature"]
    try:
        timestamp = int(lowered["webhook-timestamp"])
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > tolerance_s:
        direction = "old" if skew > 0 else "far in the future"
        raise WebhookVerificationError(
            f"webhook-timestamp is {abs(skew):.0f} s {direction} "
            f"(tolerance {tolerance_s:g} s): refused as a replay"
        )
    text = body.decode() if isinstance(body, bytes) else body
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise WebhookVerificationError("no secret given to verify with")
    given = _signatures(signature_header)
    when = datetime.fromtimestamp(timestamp, UTC)
    for key in keys:
        try:
            expected = Webhook(key).sign(msg_id, when, text).split(",", 1)[1]
        except (binascii.Error, ValueError) as error:
            raise WebhookVerificationError(f"a secret is not whsec_<base64>: {error}") from None
        expected_bytes = base64.b64decode(expected)
        if any(hmac.compare_digest(expected_bytes, sig) for sig in given):
            break
    else:
        raise WebhookVerificationError("no signature matches the given secret(s)")
    try:
        return JobEvent.model_validate_json(text)
    except ValidationError as error:
        raise WebhookVerificationError(f"signed body is not a JobEvent: {error}") from None


def _signatures(header: str) -> list[bytes]:
    """The decoded ``v1`` signatures of a ``webhook-signature`` header (others are skipped)."""
    found = []
    for entry in header.split():
        version, _, value = entry.partition(",")
        if version != SIGNATURE_VERSION or not value:
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found
