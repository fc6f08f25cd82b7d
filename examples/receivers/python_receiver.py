"""Verify an Atelier callback with the ``standardwebhooks`` package alone (no Atelier install).

A receiver needs only ``pip install standardwebhooks==1.1.0``: Atelier signs its callbacks per
Standard Webhooks (https://www.standardwebhooks.com), so any of that spec's libraries verifies
them. In a web framework, pass the raw request body (bytes, before JSON parsing) and the request
headers to :func:`verify_callback`.

From a shell, for trying it out (the body on stdin, the three headers as arguments)::

    WEBHOOK_SECRET=whsec_... python python_receiver.py \\
        webhook-id=msg_... webhook-timestamp=1700000000 webhook-signature=v1,... < body.json

prints the event type (``job.succeeded``) and exits 0, or prints why and exits 1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


def verify_callback(body: bytes, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """The event (a dict: ``type``, ``timestamp``, ``data``) if ``secret`` signed ``body`` within
    the last five minutes; raises ``WebhookVerificationError`` otherwise."""
    event: dict[str, Any] = Webhook(secret).verify(body, dict(headers))
    return event


def main(argv: list[str]) -> int:
    headers = dict(arg.split("=", 1) for arg in argv)
    try:
        event = verify_callback(sys.stdin.buffer.read(), headers, os.environ["WEBHOOK_SECRET"])
    except WebhookVerificationError as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    # de-duplicate on headers["webhook-id"] before acting: a redelivery repeats it
    print(event["type"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
