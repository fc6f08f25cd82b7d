"""What a check says about an image, and what the gate says about it: the scores stay visible,
so a flagged image can be explained and a threshold argued about with numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: how a score must compare with its threshold to pass
Rule = Literal["at_least", "at_most"]


@dataclass(frozen=True, init=False)
class Check:
    """One check of one image: ``score`` against ``threshold`` by ``rule``."""

    name: str
    score: float
    threshold: float
    rule: Rule
    passed: bool
    #: False: the check could not run and does not count (see :meth:`not_judged`)
    judged: bool = True

    def __init__(
        self, name: str, score: float, threshold: float, rule: Rule, passed: bool, judged: bool = True
    ) -> None:
        # the fields in one update rather than a frozen dataclass's six ``object.__setattr__``
        # calls: a job builds two dozen checks, and this was half of their CPU
        self.__dict__.update(
            name=name, score=score, threshold=threshold, rule=rule, passed=passed, judged=judged
        )

    @classmethod
    def at_least(cls, name: str, score: float, threshold: float) -> Check:
        """Passes when ``score >= threshold`` (a NaN score fails)."""
        return cls(name, float(score), float(threshold), "at_least", bool(score >= threshold))

    @classmethod
    def not_judged(cls, name: str, rule: Rule, threshold: float) -> Check:
        """A check that could not run: the category check of a category the judge model was not
        trained on (a catalog version's own). It passes, so it never fails an image for what
        the gate cannot see; ``judged`` False and a score of 0 record that it was not judged."""
        return cls(name, 0.0, float(threshold), rule, True, judged=False)

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
