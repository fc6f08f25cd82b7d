"""The try-on frontend's TypeScript types (``clients/typescript/atelier-api.d.ts``) are what
``openapi-typescript`` (the exact version pinned in ``clients/typescript/package.json``)
generates from the committed ``docs/openapi.json``: a route or model change that did not
regenerate them fails here. Regenerate with ``npm run --prefix clients/typescript generate``.

``scripts/setup.sh`` installs the generator (``npm ci --prefix clients/typescript``), so a
missing ``npm`` or ``node_modules`` is a failure, not a skip.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"
GENERATOR = CLIENT / "node_modules" / ".bin" / "openapi-typescript"


def test_committed_typescript_types_match_the_openapi_document(tmp_path: Path) -> None:
    assert shutil.which("npm") is not None, "npm is missing: scripts/setup.sh installs it"
    assert GENERATOR.exists(), "openapi-typescript is not installed: run `npm ci --prefix clients/typescript`"
    fresh = tmp_path / "atelier-api.d.ts"
    result = subprocess.run(
        [str(GENERATOR), str(ROOT / "docs" / "openapi.json"), "--output", str(fresh)],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    committed = (CLIENT / "atelier-api.d.ts").read_text()
    assert fresh.read_text() == committed, (
        "clients/typescript/atelier-api.d.ts is stale: run `npm run --prefix clients/typescript generate`"
    )


def test_typescript_types_compile_and_name_the_job_resource() -> None:
    """The generated file is valid TypeScript (``tsc`` from the same lock) and carries the job
    resource the try-on page reads."""
    text = (CLIENT / "atelier-api.d.ts").read_text()
    assert "Job: {" in text and '"/v1/jobs/{job_id}/events"' in text
    result = subprocess.run(
        [str(CLIENT / "node_modules" / ".bin" / "tsc"), "--noEmit", "--strict", "atelier-api.d.ts"],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
