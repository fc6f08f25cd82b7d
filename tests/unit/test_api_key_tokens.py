"""API key tokens (``api.keys.tokens``): the stored hash is HMAC-SHA256 keyed by the pepper (RFC 4231
test case 2 as the reference), a token matches only its own hash under its own pepper, and only
tokens of our shape yield a key id."""

from __future__ import annotations

from api.keys.tokens import hash_token, key_id_of, new_key_id, new_token, token_matches


def test_the_hash_is_hmac_sha256_of_the_token_keyed_by_the_pepper() -> None:
    # RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?"
    expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert hash_token("what do ya want for nothing?", pepper=b"Jefe") == expected


def test_a_token_matches_its_own_hash_under_its_own_pepper_only() -> None:
    token = new_token(new_key_id())
    stored = hash_token(token, pepper=b"pepper-1")
    assert token_matches(token, stored, pepper=b"pepper-1")
    assert not token_matches(token, stored, pepper=b"pepper-2")
    assert not token_matches(new_token(new_key_id()), stored, pepper=b"pepper-1")


def test_only_tokens_of_our_shape_have_a_key_id() -> None:
    key_id = new_key_id()
    assert key_id_of(new_token(key_id)) == key_id
    assert key_id_of("atl_" + key_id + "_short") is None
    assert key_id_of("sk_live_" + "a" * 43) is None
