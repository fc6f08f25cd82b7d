"""The create script's admission hook: a caller's own check, run by Redis in the same script (so
in the same round trip) as a new job's record, before anything is written.

Why: the HTTP API holds each key to a request rate and a daily job quota, kept in Redis beside the
jobs. Checked in a script of their own they cost a second round trip on every submit; checked in
the create script they cost none, and the quota can be taken only for a job that is created (an
idempotent replay takes none), atomically with the creation, so concurrent submits never pass it.
The store knows nothing of what is checked: an :class:`Admission` brings its Lua function, keys
and arguments, and reads its own answer back.

The function (:attr:`Admission.script`, a Lua function expression) is called as
``admit(keys, argv, new_job)`` once the script knows what the create would do: ``new_job`` is
``true`` when a job would be created, ``false`` when the idempotency key names an earlier job (a
replay, or a conflict). It returns two values: whether it admits the request, and its answer (an
array of integers). It may write (charge what it counts) either way. A refusal writes nothing of
the job: no record, no index, no idempotency key, no event. Lua has no way to call another
script, so :func:`with_admission` puts the function's text in the create script's hook line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

from core.errors import ErrorCode, PermanentError

#: the create script's hook line (``scripts/create.lua``), replaced by an admission's function
HOOK_LINE: Final = "local admit = nil -- the admission hook (core.jobs.admission)"
#: the create script's outcome for a refused admission: nothing of the job was written
REFUSED: Final = -2


class Admission(Protocol):
    """What a caller's admission brings to ``JobStore.create`` (see the module)."""

    #: a Lua function expression, ``function(keys, argv, new_job) ... end``
    @property
    def script(self) -> str: ...

    #: its keys (``keys`` in the function)
    @property
    def keys(self) -> Sequence[str]: ...

    #: its arguments (``argv`` in the function)
    @property
    def args(self) -> Sequence[str | int]: ...

    def answered(self, answer: list[int]) -> None:
        """The function's answer, admitted or not; raise the caller's own refusal here (else the
        store raises :class:`AdmissionRefused` for a refused one)."""


class AdmissionRefused(PermanentError):
    """The admission refused the request and raised nothing of its own: nothing of the job was
    written. Not a store failure (``StoreError``): retrying at once would be refused again."""

    def __init__(self, answer: list[int]) -> None:
        super().__init__(ErrorCode.ADMISSION_REFUSED, f"the admission refused the job: {answer}")
        self.answer = answer


def with_admission(create_script: str, admission_script: str) -> str:
    """The create script with ``admission_script`` (a Lua function expression) in its hook."""
    if create_script.count(HOOK_LINE) != 1:
        raise ValueError("the create script has no single admission hook line")
    return create_script.replace(HOOK_LINE, f"local admit = {admission_script}")
