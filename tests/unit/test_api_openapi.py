"""The committed OpenAPI document is the one the app generates, and it says what the API
promises: the submission bodies are the v1 contracts without ``requester``, every error is
problem+json, every ``/v1`` operation needs the bearer key."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from api.cli import openapi_text
from producer.cli import app

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "docs" / "openapi.json"


def test_committed_openapi_document_is_generated_from_the_app() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == openapi_text(), (
        "docs/openapi.json is stale: run `atelier api openapi --out docs/openapi.json`"
    )


def test_atelier_api_openapi_writes_the_document(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    result = CliRunner().invoke(app, ["api", "openapi", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == openapi_text()


def test_document_states_the_contract() -> None:
    document = json.loads(openapi_text())
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]
    assert "requester" not in schemas["ListingSubmission"]["required"]
    assert schemas["ListingSubmission"]["additionalProperties"] is False
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an Atelier API key",
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1"):
                assert operation["security"] == [{"ApiKey": []}], (method, path)
                assert "401" in operation["responses"] and "403" in operation["responses"]
            for status, response in operation["responses"].items():
                if status[0] in "45" and path != "/readyz":  # a probe's 503 carries its checks
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
