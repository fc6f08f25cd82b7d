"""API key secrets: how they are made, shown and hashed.

A key is shown once as ``atl_<key_id>_<secret>``: ``key_id`` is public (16 hex digits, the row's
primary key, shown in listings and logs), ``secret`` is 32 random bytes from :mod:`secrets`
(``token_urlsafe``, 43 characters). Only a hash of the whole token is stored.

Why HMAC-SHA256 and not bcrypt/scrypt/argon2: a slow password hash exists to make guessing a
*low-entropy* human password expensive. These secrets have 256 random bits, so no dictionary
or brute force reaches them, however fast the hash; a slow hash would only add tens of
milliseconds of CPU to every authenticated request. This is what GitHub's and Stripe's tokens do.
The HMAC key is a server-side pepper (``ATELIER_KEY_PEPPER``): a stolen copy of the database
alone then cannot even confirm a leaked token. Comparison is constant-time
(:func:`hmac.compare_digest`), and the lookup is by ``key_id``, never by the secret.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Final

#: what every token starts with, so secret scanners (and people) recognise an Atelier key
TOKEN_PREFIX: Final = "atl"
#: random bytes of a public key id (hex: twice as many characters, never an underscore)
KEY_ID_BYTES: Final = 8
#: random bytes of the secret part
SECRET_BYTES: Final = 32
#: the shape of a token; anything else is refused before it is hashed
TOKEN_PATTERN: Final = re.compile(rf"^{TOKEN_PREFIX}_([0-9a-f]{{{KEY_ID_BYTES * 2}}})_([A-Za-z0-9_-]{{43}})$")
#: the shape of a key id
KEY_ID_PATTERN: Final = re.compile(rf"^[0-9a-f]{{{KEY_ID_BYTES * 2}}}$")


def new_key_id() -> str:
    return secrets.token_hex(KEY_ID_BYTES)


def new_token(key_id: str) -> str:
    """A fresh secret token for ``key_id``: shown to its owner once, never stored."""
    return f"{TOKEN_PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"


def key_id_of(token: str) -> str | None:
    """The public key id inside ``token``, or ``None`` when it is not shaped like one of ours."""
    match = TOKEN_PATTERN.fullmatch(token)
    return match.group(1) if match else None


def hash_token(token: str, *, pepper: bytes) -> str:
    """The stored form of ``token``: HMAC-SHA256 keyed by the pepper, as 64 hex digits (one
    OpenSSL call, ``hmac.digest``: every authenticated request hashes its token)."""
    return hmac.digest(pepper, token.encode(), "sha256").hex()


def token_matches(token: str, stored_hash: str, *, pepper: bytes) -> bool:
    """Whether ``token`` hashes to ``stored_hash``, in constant time."""
    return hmac.compare_digest(hash_token(token, pepper=pepper), stored_hash)
