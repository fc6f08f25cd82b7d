"""What a new key may be: the checks ``KeyStore.create`` runs before it writes anything.

A key's own limits, where it has any, are checked as the service's are (``api.settings``): a rate
in the ``limits`` library's notation (``"600/minute;20/second"``; ``""`` for no rate limit) and a
daily quota of 0 (none) or more jobs.

The requester follows the contracts' ``Identifier`` rule (``core.contracts.v1``), so a key's
requester is always one a job request could carry. A publishable key ships inside a browser or a
phone app, where anyone can read it: it holds only ``PUBLISHABLE_SCOPES`` and names the exact
origins allowed to use it. A secret key must never reach a browser, so it takes no CORS origin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from limits import parse_many

from api.keys.errors import InvalidKeyRequest, ScopeNotAllowed
from api.keys.model import PUBLISHABLE_SCOPES, Scope
from api.keys.tables import MAX_NAME_CHARS, MAX_RATE_LIMIT_CHARS
from core.contracts.bounds import quoted
from core.contracts.v1 import MAX_IDENTIFIER_CHARS

#: the contracts' ``Identifier`` rule (``core.contracts.v1``), for a requester id
REQUESTER_PATTERN: Final = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_IDENTIFIER_CHARS - 1}}}$")
#: most CORS origins on one key, and the longest one
MAX_CORS_ORIGINS: Final = 32
MAX_ORIGIN_CHARS: Final = 255
#: the largest daily quota a key may have (PostgreSQL ``integer``)
MAX_DAILY_QUOTA: Final = 2**31 - 1


def checked_requester(requester: str) -> str:
    if not REQUESTER_PATTERN.fullmatch(requester):
        raise InvalidKeyRequest(
            f"requester {quoted(requester)}: 1-{MAX_IDENTIFIER_CHARS} characters: letters, digits "
            "and . _ : - (starting with a letter or digit)"
        )
    return requester


def checked_name(name: str) -> str:
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise InvalidKeyRequest(f"name {quoted(name)}: at most {MAX_NAME_CHARS} printable characters")
    return name


def checked_scopes(scopes: Iterable[Scope | str], *, publishable: bool) -> frozenset[Scope]:
    """``scopes`` as a set of :class:`Scope`; a publishable key's within ``PUBLISHABLE_SCOPES``."""
    known = {scope.value for scope in Scope}
    wanted = set()
    for scope in scopes:
        if scope not in known:
            raise InvalidKeyRequest(f"scope {quoted(scope)}: not one of {', '.join(sorted(known))}")
        wanted.add(Scope(scope))
    if not wanted:
        raise InvalidKeyRequest("a key needs at least one scope")
    if publishable and not wanted <= PUBLISHABLE_SCOPES:
        beyond = ", ".join(sorted(wanted - PUBLISHABLE_SCOPES))
        allowed = ", ".join(sorted(PUBLISHABLE_SCOPES))
        raise ScopeNotAllowed(f"a publishable key may only hold {allowed}; refused: {beyond}")
    return frozenset(wanted)


def checked_origins(origins: Iterable[str], *, publishable: bool) -> tuple[str, ...]:
    """Each origin exactly as a browser sends it (``https://shop.example``, ``http://host:8080``):
    scheme and host, no path, no wildcard; sorted and without duplicates."""
    checked = sorted({_checked_origin(origin) for origin in origins})
    if checked and not publishable:
        raise InvalidKeyRequest(
            "only a publishable key takes CORS origins: a secret key never reaches a browser"
        )
    if len(checked) > MAX_CORS_ORIGINS:
        raise InvalidKeyRequest(f"at most {MAX_CORS_ORIGINS} CORS origins per key")
    return tuple(checked)


def _checked_origin(origin: str) -> str:
    refusal = InvalidKeyRequest(
        f"CORS origin {quoted(origin)}: scheme://host[:port] with http or https, nothing after it"
    )
    if len(origin) > MAX_ORIGIN_CHARS or not origin.isascii():
        raise refusal
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        raise refusal from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "*" in origin
        or parts.username is not None
        or parts.password is not None
        or parts.path
        or parts.query
        or parts.fragment
        or origin.endswith(("?", "#"))
    ):
        raise refusal
    # browsers send the scheme and host in lowercase, and no default port
    default_port = {"http": 80, "https": 443}[parts.scheme]
    netloc = parts.hostname if port in (None, default_port) else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:  # an IPv6 literal keeps its brackets
        netloc = f"[{parts.hostname}]" if port in (None, default_port) else f"[{parts.hostname}]:{port}"
    return f"{parts.scheme}://{netloc}"


def checked_rate_limit(rate_limit: str | None) -> str | None:
    """A key's own rate limit in ``limits``' notation, stripped (``""``: no rate limit);
    ``None`` keeps the service's."""
    if rate_limit is None:
        return None
    rate_limit = rate_limit.strip()
    refusal = InvalidKeyRequest(
        f"rate limit {quoted(rate_limit)}: limits like '20/second' or '600/minute;20/second' "
        f"(at most {MAX_RATE_LIMIT_CHARS} characters), or '' for none"
    )
    if len(rate_limit) > MAX_RATE_LIMIT_CHARS or not rate_limit.isascii():
        raise refusal
    if rate_limit:
        try:
            items = parse_many(rate_limit)
        except ValueError:
            raise refusal from None
        if not items or any(item.amount < 1 for item in items):
            raise refusal
    return rate_limit


def checked_daily_quota(daily_quota: int | None) -> int | None:
    """A key's own daily job quota (0: none); ``None`` keeps the service's."""
    if daily_quota is not None and not 0 <= daily_quota <= MAX_DAILY_QUOTA:
        raise InvalidKeyRequest(f"daily quota {daily_quota}: 0 (none) to {MAX_DAILY_QUOTA} jobs")
    return daily_quota
