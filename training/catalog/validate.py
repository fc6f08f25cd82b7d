"""Check every row and file of a catalog before training starts.

A catalog is a folder of images and an attributes CSV with the columns ``file`` (a path inside
the folder), ``category`` and ``colour`` (and ``pattern`` when the catalog defines patterns);
other columns are kept but ignored. Its vocabularies come from ``conditions.json`` in the folder
(``serving_contract.manifest.Conditions``), else the committed taxonomy and palette.

Each row is checked for: a missing value, a file outside the folder, a missing, corrupt or too
small image, an unknown category, colour or pattern, and a duplicate (the same file, or the same
image bytes, as an earlier row). Every problem is reported with its CSV line and file; nothing is
dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError

from serving_contract.manifest import Conditions, default_conditions

#: the vocabulary file a catalog folder may carry
CONDITIONS_NAME = "conditions.json"

#: columns every attributes CSV needs
REQUIRED_COLUMNS = ("file", "category", "colour")


class CatalogError(ValueError):
    """The catalog as a whole cannot be used (no CSV, a missing column, a bad conditions file)."""


@dataclass(frozen=True)
class CatalogRow:
    """A row that passed every check, its values as condition indexes."""

    line: int  #: line in the CSV (the header is line 1)
    file: str
    category: int
    colour: int
    pattern: int | None
    sha256: str


@dataclass(frozen=True)
class Problem:
    line: int
    file: str
    rule: str  #: short name of the broken rule, e.g. "unknown category"
    detail: str


@dataclass
class CatalogCheck:
    directory: Path
    attributes: Path
    conditions: Conditions
    columns: list[str]
    rows: list[CatalogRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    raw: dict[int, dict[str, str]] = field(default_factory=dict)  #: every CSV row by line

    @property
    def invalid_lines(self) -> list[int]:
        return sorted({p.line for p in self.problems})

    def sha256(self) -> str:
        """Identifies the training data: the CSV bytes and the kept images, in order."""
        digest = hashlib.sha256(self.attributes.read_bytes())
        for row in self.rows:
            digest.update(row.sha256.encode())
        return digest.hexdigest()


def load_conditions(directory: Path) -> Conditions:
    """``DIR/conditions.json``, else the default categories and colours."""
    path = directory / CONDITIONS_NAME
    if not path.exists():
        defaults = default_conditions()
        return Conditions(categories=defaults.categories, colours=defaults.colours)
    try:
        conditions = Conditions.model_validate_json(path.read_text())
    except ValidationError as error:
        raise CatalogError(f"{path}: not a valid conditions file:\n{error}") from None
    if not conditions.categories or not conditions.colours:
        raise CatalogError(f"{path}: a catalog needs at least one category and one colour")
    return conditions


def check_catalog(directory: Path, attributes: Path, *, min_side: int) -> CatalogCheck:
    """Check every row of ``attributes`` (relative to ``directory`` unless absolute)."""
    directory = directory.resolve()
    attributes = attributes if attributes.is_absolute() else directory / attributes
    if not attributes.is_file():
        raise CatalogError(f"attributes file {attributes} not found")
    conditions = load_conditions(directory)
    with attributes.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        required = [*REQUIRED_COLUMNS, *(["pattern"] if conditions.patterns else [])]
        missing = [c for c in required if c not in columns]
        if missing:
            raise CatalogError(
                f"{attributes}: missing column(s) {', '.join(missing)}; has {', '.join(columns)}"
            )
        check = CatalogCheck(directory, attributes, conditions, columns)
        files: dict[str, int] = {}
        hashes: dict[str, int] = {}
        for number, values in enumerate(reader, start=2):
            values = {k: (v or "").strip() for k, v in values.items() if k is not None}
            check.raw[number] = values
            _check_row(check, number, values, min_side, files, hashes)
    if not check.raw:
        raise CatalogError(f"{attributes}: no rows")
    return check


def _check_row(
    check: CatalogCheck,
    line: int,
    values: dict[str, str],
    min_side: int,
    files: dict[str, int],
    hashes: dict[str, int],
) -> None:
    name = values.get("file", "")
    problems: list[Problem] = []

    def problem(rule: str, detail: str) -> None:
        problems.append(Problem(line, name, rule, detail))

    conditions = check.conditions
    vocabularies = {
        "category": conditions.category_slugs(),
        "colour": conditions.colour_names(),
        **({"pattern": conditions.pattern_names()} if conditions.patterns else {}),
    }
    indexes: dict[str, int] = {}
    for column, known in vocabularies.items():
        value = values.get(column, "")
        if not value:
            problem(f"missing {column}", f"the {column} column is empty")
        elif value not in known:
            problem(f"unknown {column}", f"{value!r} is not one of: {', '.join(known)}")
        else:
            indexes[column] = known.index(value)
    digest = ""
    if not name:
        problem("missing file", "the file column is empty")
    else:
        path = (check.directory / name).resolve()
        if not path.is_relative_to(check.directory):
            problem("file outside catalog", f"{name} is not inside {check.directory}")
        elif name in files:
            problem("duplicate row", f"{name} is already listed on line {files[name]}")
        else:
            files[name] = line
            if not path.is_file():
                problem("missing image", f"no file {path}")
            else:
                digest, detail = _check_image(path, min_side)
                if detail is not None:
                    problem(*detail)
                elif digest in hashes:
                    problem("duplicate row", f"same image bytes as line {hashes[digest]}")
                else:
                    hashes[digest] = line
    if problems:
        check.problems += problems
        return
    check.rows.append(
        CatalogRow(line, name, indexes["category"], indexes["colour"], indexes.get("pattern"), digest)
    )


def _check_image(path: Path, min_side: int) -> tuple[str, tuple[str, str] | None]:
    """(sha256 of the file, the problem with it or ``None``): decodes the whole image."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(path) as image:
            image.load()
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return digest, ("corrupt image", f"Pillow cannot decode it: {error}")
    if min(width, height) < min_side:
        return digest, ("image too small", f"{width}x{height} px; the shorter side must be >= {min_side}")
    return digest, None
