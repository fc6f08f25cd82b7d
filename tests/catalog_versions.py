"""Catalog-trained ``product_cgan`` versions for the tests that export and serve them: a tiny real
run on tests/catalog_fixture.py's catalog (with or without patterns), exported beside a copy of
the committed version 1, in a repository whose config serves every version.

Why real runs and not saved stand-ins: what the export and the backends accept must be what the
catalog trainer leaves (a generator conditioned on patterns exactly when the catalog lists them).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from embedded.triton import DEFAULT_REPOSITORY
from tests.catalog_fixture import write_catalog
from training.catalog.command import CatalogRun, run_catalog_cgan
from training.catalog.export import export_catalog_cgan
from training.catalog.train_cgan import CatalogCganConfig

#: a run of two steps at the smallest widths the 32 px nets take: about a second on one thread
TINY = CatalogCganConfig(epochs=1, batch_size=4, generator_width=16, discriminator_width=4, steps_per_epoch=2)


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one intra-op thread (the runs are tiny; the machine is shared), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_tiny(root: Path, *, patterns: bool = False, config: CatalogCganConfig = TINY) -> Path:
    """Write the fixture catalog (``patterns``: its patterned variant) under ``root`` and train
    ``config`` on its valid rows; returns the run directory (its checkpoint is the last epoch's)."""
    name = "patterned" if patterns else "plain"
    catalog, run_dir = root / f"{name}-catalog", root / f"{name}-run"
    write_catalog(catalog, patterns=patterns)
    with one_thread():
        run_catalog_cgan(
            CatalogRun(catalog, Path("attributes.csv"), run_dir, config, skip_invalid=True, command="test")
        )
    return run_dir


def committed_repository(path: Path) -> Path:
    """A scratch model repository at ``path`` holding a copy of the committed ``product_cgan``
    (version 1 and the shared config, which declares ``PATTERN`` optional)."""
    shutil.copytree(DEFAULT_REPOSITORY / "product_cgan", path / "product_cgan")
    return path


def export_tiny(root: Path, repository: Path, *, patterns: bool = False) -> Path:
    """:func:`train_tiny`, exported as the next version of ``repository``'s ``product_cgan``;
    returns the version folder."""
    return export_catalog_cgan(train_tiny(root, patterns=patterns), repository)


def serve_every_version(repository: Path) -> None:
    """Let Triton load every version folder of ``product_cgan`` (the committed config serves the
    latest only), as OPERATIONS.md tells an operator to."""
    config = repository / "product_cgan" / "config.pbtxt"
    text = re.sub(r'(name: "product_cgan"\n)', r"\1version_policy: { all {} }\n", config.read_text())
    config.write_text(text)
