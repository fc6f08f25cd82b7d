"""The key store against the real PostgreSQL (127.0.0.1:5432, ``scripts/services.sh``): migrations
from an empty database, keys created, authenticated, revoked and surviving a restart, the hash
stored and never the secret, publishable keys held to their scopes, and ``atelier keys``.

Each test module works in a database of its own (``atelier_test_<random>``), dropped at the end.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, make_url, pool, text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from api.keys.errors import InvalidKeyRequest, KeyNotFound, KeyStoreUnavailable, ScopeNotAllowed
from api.keys.migrate import current_revision, downgrade, ensure_database, head_revision, upgrade
from api.keys.model import PUBLISHABLE_SCOPES, KeyVerifier, Scope
from api.keys.settings import DatabaseSettings
from api.keys.store import KeyStore
from api.keys.tables import Base
from api.review import tables as review_tables  # noqa: F401 - the review tables share Base's metadata
from producer.cli import app

PEPPER = "test-pepper"


@pytest.fixture
def missing_database() -> Iterator[str]:
    """The URL of a database the server does not have yet, dropped afterwards if something made it
    (even with connections left open)."""
    server = make_url(DatabaseSettings().database_url.get_secret_value())
    name = f"atelier_test_{secrets.token_hex(6)}"
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        admin = create_engine(
            server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool
        )
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def fresh_database(missing_database: str) -> str:
    """The URL of a new, empty database."""
    assert ensure_database(missing_database)
    assert not ensure_database(missing_database)  # there now: left as it is
    return missing_database


@pytest.fixture
def database(fresh_database: str) -> str:
    upgrade(fresh_database)
    return fresh_database


@pytest.fixture
def engine(database: str) -> Iterator[Engine]:
    engine = create_engine(database)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> KeyStore:
    return KeyStore(engine, pepper=PEPPER)


def test_a_migration_from_an_empty_database_creates_the_tables_and_goes_back(fresh_database: str) -> None:
    assert current_revision(fresh_database) is None
    upgrade(fresh_database)
    engine = create_engine(fresh_database, poolclass=pool.NullPool)
    try:
        assert {"tenants", "api_keys"} <= set(inspect(engine).get_table_names())
        assert current_revision(fresh_database) == head_revision()
        with engine.connect() as connection:  # the revisions build exactly what api.keys.tables declares
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        upgrade(fresh_database)  # at head: nothing to do
        downgrade(fresh_database)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert current_revision(fresh_database) is None
        upgrade(fresh_database)
        assert {"tenants", "api_keys"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_created_key_authenticates_until_it_is_revoked(store: KeyStore) -> None:
    verifier: KeyVerifier = store
    key, token = store.create("shop-1", scopes=[Scope.SUBMIT_LISTINGS, Scope.READ], name="catalog sync")
    assert token.startswith(f"atl_{key.key_id}_")
    found = verifier.authenticate(token)
    assert found is not None
    assert (found.key_id, found.requester, found.scopes, found.name, found.publishable) == (
        key.key_id,
        "shop-1",
        frozenset({Scope.SUBMIT_LISTINGS, Scope.READ}),
        "catalog sync",
        False,
    )
    assert found.allows(Scope.READ) and not found.allows(Scope.ADMIN)
    assert found.last_used_at is not None and found.revoked_at is None
    revoked = store.revoke(key.key_id)
    assert revoked.revoked_at is not None
    assert store.authenticate(token) is None
    assert store.revoke(key.key_id).revoked_at == revoked.revoked_at  # revoking again changes nothing


def test_a_wrong_unknown_or_malformed_secret_authenticates_to_none(store: KeyStore) -> None:
    key, token = store.create("shop-1", scopes=[Scope.READ])
    other_secret = f"atl_{key.key_id}_{secrets.token_urlsafe(32)}"
    unknown_key = f"atl_{secrets.token_hex(8)}_{token.split('_', 2)[2]}"
    for secret in (
        other_secret,
        unknown_key,
        token[:-1],
        token + "x",
        "",
        "atl__",
        "x" * 100_000,
        token.upper(),
        token.replace("atl_", "sk_", 1),
    ):
        assert store.authenticate(secret) is None, secret[:60]
    assert store.authenticate(token) is not None


def test_only_a_keyed_hash_of_the_secret_is_stored(store: KeyStore, engine: Engine) -> None:
    key, token = store.create("shop-1", scopes=[Scope.READ], name="n")
    with engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM api_keys WHERE key_id = :id"), {"id": key.key_id}).one()
    stored = " ".join(str(value) for value in row)
    assert token not in stored and token.split("_", 2)[2] not in stored
    assert row.secret_hash == hmac.new(PEPPER.encode(), token.encode(), hashlib.sha256).hexdigest()
    # the pepper is part of the hash: a server with another one does not accept the token
    assert KeyStore(engine, pepper="another pepper").authenticate(token) is None


def test_keys_survive_a_new_store_and_engine_as_after_an_api_restart(database: str) -> None:
    with KeyStore(database, pepper=PEPPER) as first:
        kept, kept_token = first.create("shop-1", scopes=[Scope.READ, Scope.CANCEL])
        gone, gone_token = first.create("shop-1", scopes=[Scope.READ])
        first.revoke(gone.key_id)
    settings = DatabaseSettings(database_url=database, key_pepper=PEPPER)  # type: ignore[arg-type]
    with KeyStore.from_settings(settings) as second:
        found = second.authenticate(kept_token)
        assert found is not None and found.scopes == {Scope.READ, Scope.CANCEL}
        assert second.authenticate(gone_token) is None
        assert [key.key_id for key in second.list("shop-1")] == [kept.key_id, gone.key_id]


@pytest.mark.parametrize("scope", sorted(set(Scope) - PUBLISHABLE_SCOPES))
def test_a_publishable_key_refuses_every_scope_beyond_tryons_and_read(
    store: KeyStore, engine: Engine, scope: Scope
) -> None:
    with pytest.raises(ScopeNotAllowed) as refused:
        store.create("shop-1", scopes=[Scope.SUBMIT_TRYONS, scope], publishable=True)
    assert refused.value.code == "scope_not_allowed" and scope.value in refused.value.message
    assert store.list() == ()
    with engine.connect() as connection:  # nothing written, not even the tenant
        assert connection.execute(text("SELECT count(*) FROM tenants")).scalar_one() == 0
    # and the database itself refuses such a row, whatever code writes it
    store.create("shop-1", scopes=[Scope.READ])
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_keys (key_id, requester, secret_hash, scopes, publishable) "
                "VALUES ('0123456789abcdef', 'shop-1', 'h', ARRAY[:scope], true)"
            ),
            {"scope": scope.value},
        )


def test_a_publishable_key_holds_its_scopes_and_exact_origins(store: KeyStore) -> None:
    key, token = store.create(
        "shop-2",
        scopes=[Scope.SUBMIT_TRYONS, "read"],
        publishable=True,
        cors_origins=["https://Shop.example:443", "http://localhost:5173", "https://shop.example"],
    )
    found = store.authenticate(token)
    assert found is not None and found.publishable and found.scopes == PUBLISHABLE_SCOPES
    assert found.cors_origins == key.cors_origins == ("http://localhost:5173", "https://shop.example")


@pytest.mark.parametrize(
    "origin",
    [
        "*",
        "https://*.shop.example",
        "https://shop.example/",
        "https://shop.example/path",
        "ftp://shop.example",
        "https://user@shop.example",
        "shop.example",
        "https://shop.example?x",
        "https://shop.example:99999",
    ],
)
def test_a_cors_origin_must_be_an_exact_origin(store: KeyStore, origin: str) -> None:
    with pytest.raises(InvalidKeyRequest):
        store.create("shop-2", scopes=[Scope.READ], publishable=True, cors_origins=[origin])


def test_a_secret_key_takes_no_cors_origin_and_requesters_follow_the_contract(store: KeyStore) -> None:
    with pytest.raises(InvalidKeyRequest, match="publishable"):
        store.create("shop-1", scopes=[Scope.READ], cors_origins=["https://shop.example"])
    for requester in ("", "-shop", "shop 1", "s" * 129, "shöp"):
        with pytest.raises(InvalidKeyRequest, match="requester"):
            store.create(requester, scopes=[Scope.READ])
    with pytest.raises(InvalidKeyRequest, match="scope"):
        store.create("shop-1", scopes=[])
    with pytest.raises(InvalidKeyRequest, match="scope"):
        store.create("shop-1", scopes=["write"])
    assert store.list() == ()
    key, _ = store.create("s" * 128, scopes=[Scope.READ])
    assert key.requester == "s" * 128


def test_a_tenant_is_created_with_its_first_key_only(store: KeyStore, engine: Engine) -> None:
    first, _ = store.create("shop-1", scopes=[Scope.READ])
    second, _ = store.create("shop-1", scopes=[Scope.ADMIN])
    other, _ = store.create("shop-2", scopes=[Scope.READ])
    with engine.connect() as connection:
        tenants = connection.execute(text("SELECT requester, created_at FROM tenants ORDER BY 1")).all()
    assert [row.requester for row in tenants] == ["shop-1", "shop-2"]
    assert all(row.created_at <= datetime.now(UTC) for row in tenants)
    assert [key.key_id for key in store.list("shop-1")] == [first.key_id, second.key_id]
    assert {key.key_id for key in store.list()} == {first.key_id, second.key_id, other.key_id}


def test_revoking_an_unknown_key_is_refused(store: KeyStore) -> None:
    for key_id in (secrets.token_hex(8), "not-a-key-id", "x" * 10_000):
        with pytest.raises(KeyNotFound) as refused:
            store.revoke(key_id)
        assert refused.value.code == "key_not_found" and len(str(refused.value)) < 300


def test_an_unreachable_database_is_a_retryable_error() -> None:
    unreachable = KeyStore("postgresql+psycopg://postgres@127.0.0.1:1/atelier", connect_timeout_s=1)
    with unreachable as store, pytest.raises(KeyStoreUnavailable) as failed:
        store.authenticate(f"atl_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}")
    assert failed.value.retryable and failed.value.code == "key_store_unavailable"


def test_the_keys_cli_migrates_creates_lists_and_revokes(
    missing_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_database = missing_database  # `atelier keys migrate` creates it
    monkeypatch.setenv("ATELIER_DATABASE_URL", fresh_database)
    monkeypatch.setenv("ATELIER_KEY_PEPPER", PEPPER)
    runner = CliRunner()
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 1 and "does not exist" in listed.stderr

    migrated = runner.invoke(app, ["keys", "migrate"])
    assert migrated.exit_code == 0, migrated.output
    assert str(head_revision()) in migrated.stderr

    created = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--requester",
            "shop-1",
            "--scope",
            "submit:listings",
            "--scope",
            "read",
            "--name",
            "sync",
        ],
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()  # the secret alone on stdout, shown this once
    with KeyStore(fresh_database, pepper=PEPPER) as store:
        key = store.authenticate(token)
    assert key is not None and key.scopes == {Scope.SUBMIT_LISTINGS, Scope.READ}
    assert key.key_id in created.stderr

    listed = runner.invoke(app, ["keys", "list", "--requester", "shop-1", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(row["key_id"], row["scopes"], row["revoked_at"]) for row in rows] == [
        (key.key_id, ["read", "submit:listings"], None)
    ]
    assert token not in listed.output and token not in runner.invoke(app, ["keys", "list"]).output

    refused = runner.invoke(
        app, ["keys", "create", "--requester", "shop-1", "--scope", "admin", "--publishable"]
    )
    assert refused.exit_code == 2 and "publishable" in refused.stderr and refused.stdout == ""

    revoked = runner.invoke(app, ["keys", "revoke", key.key_id])
    assert revoked.exit_code == 0, revoked.output
    with KeyStore(fresh_database, pepper=PEPPER) as store:
        assert store.authenticate(token) is None
    assert runner.invoke(app, ["keys", "revoke", secrets.token_hex(8)]).exit_code == 1

    downgrade(fresh_database)  # tables gone: the message says what to run
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 1 and "atelier keys migrate" in listed.stderr
