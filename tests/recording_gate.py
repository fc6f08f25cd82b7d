"""A :class:`worker.stubs.ScriptedGate` that keeps what it was asked: the worker tests check what
the gate saw (the images of each judgement, and the category and colour it compared them with)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from quality.verdict import Verdict
from worker.stubs import ScriptedGate


class RecordingGate(ScriptedGate):
    """Judges as :class:`ScriptedGate` does (``failing_values``, ``max_tries``); ``batches`` keeps
    a copy of each batch of images judged, ``asked`` its ``(category, colour)``."""

    def __init__(self, failing_values: Mapping[int, Sequence[str]] | None = None, *, max_tries: int = 3):
        super().__init__(failing_values, max_tries=max_tries)
        self.batches: list[np.ndarray] = []
        self.asked: list[tuple[int | None, Any]] = []
        #: the pattern each call was judged for (``None``: a version without patterns)
        self.patterns: list[str | None] = []

    def judge(
        self,
        images: np.ndarray,
        probabilities: np.ndarray,
        *,
        category: int | None,
        colour: int | tuple[int, int, int],
        pattern: str | None = None,
    ) -> list[Verdict]:
        self.batches.append(np.array(images, copy=True))
        self.asked.append((category, colour))
        self.patterns.append(pattern)
        return super().judge(images, probabilities, category=category, colour=colour, pattern=pattern)
