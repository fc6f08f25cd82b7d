"""The catalog check as people read it (a rich table) and as a file of the skipped rows."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.console import Console
from rich.table import Table

from training.catalog.validate import CatalogCheck


def problems_table(check: CatalogCheck, *, limit: int = 200) -> Table:
    """One line per problem: CSV line, file, rule and detail (the first ``limit`` of them)."""
    table = Table(title=f"{len(check.problems)} problem(s) in {check.attributes}", show_lines=False)
    for column in ("line", "file", "rule", "detail"):
        table.add_column(column, overflow="fold")
    for problem in check.problems[:limit]:
        table.add_row(str(problem.line), problem.file, problem.rule, problem.detail)
    if len(check.problems) > limit:
        table.caption = f"... and {len(check.problems) - limit} more"
    return table


def print_check(check: CatalogCheck, console: Console) -> None:
    console.print(
        f"catalog {check.directory}: {len(check.raw)} rows, {len(check.rows)} valid, "
        f"{len(check.invalid_lines)} invalid; {len(check.conditions.categories)} categories, "
        f"{len(check.conditions.colours)} colours, {len(check.conditions.patterns)} patterns"
    )
    if check.problems:
        console.print(problems_table(check))


def write_skipped(check: CatalogCheck, path: Path) -> Path:
    """The invalid rows as they were, plus ``line`` and ``problems`` columns (CSV)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    reasons: dict[int, list[str]] = {}
    for problem in check.problems:
        reasons.setdefault(problem.line, []).append(f"{problem.rule}: {problem.detail}")
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["line", *check.columns, "problems"])
        writer.writeheader()
        for line in check.invalid_lines:
            writer.writerow({"line": line, **check.raw[line], "problems": "; ".join(reasons[line])})
    return path
