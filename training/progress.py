"""Progress bars and per-epoch metric logs (CSV, plus a PNG plot of the curves)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def progress_bar(*, disable: bool = False) -> Iterator[Progress]:
    """Rich progress bars; ``disable`` silences them (every rank of a distributed run but 0)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, refresh_per_second=2, disable=disable) as progress:
        yield progress


class MetricsLog:
    """Appends one row per epoch to ``metrics.csv`` and redraws ``metrics.png``."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "metrics.csv"
        self.plot_path = run_dir / "metrics.png"

    def rows(self) -> list[dict[str, float]]:
        if not self.path.exists():
            return []
        with self.path.open() as handle:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]

    def append(self, row: dict[str, float]) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.plot()

    def plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.rows()
        names = [k for k in rows[0] if k not in ("epoch", "seconds")]
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
        epochs = [r["epoch"] for r in rows]
        for ax, name in zip(axes[0], names, strict=True):
            ax.plot(epochs, [r[name] for r in rows], marker="o")
            ax.set_title(name)
            ax.set_xlabel("epoch")
        fig.tight_layout()
        fig.savefig(self.plot_path, dpi=80)
        plt.close(fig)
