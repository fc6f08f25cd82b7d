"""What a check says about an image, and what the gate says about it: the scores stay visible,
so a flagged image can be explained and a threshold argued about with numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: how a score must compare with its threshold to pass
Rule = Literal["at_least", "at_most"]


@dataclass(frozen=True)
class Check:
    """One check of one image: ``score`` against ``threshold`` by ``rule``."""

    name: str
    score: float
    threshold: float
    rule: Rule
    passed: bool

    @classmethod
    def at_least(cls, name: str, score: float, threshold: float) -> Check:
        """Passes when ``score >= threshold`` (a NaN score fails)."""
        return cls(name, float(score), float(threshold), "at_least", bool(score >= threshold))

    @classmethod
    def at_most(cls, name: str, score: float, threshold: float) -> Check:
        """Passes when ``score <= threshold`` (a NaN score fails)."""
        return cls(name, float(score), float(threshold), "at_most", bool(score <= threshold))


@dataclass(frozen=True)
class Verdict:
    """Every check of one image; it passes the gate when each of them does."""

    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the checks that failed, in the order they ran."""
        return tuple(c.name for c in self.checks if not c.passed)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)
