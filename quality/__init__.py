"""The quality gate's checks on generated product images: plain numpy, Pillow and ImageHash.

Each check scores one image (or a job's variants, for near-duplicates) and returns a ``Check``:
its score, its threshold and whether it passed. ``judge_job`` runs them all on one listing job,
given the judge's category probabilities (the ``quality_judge`` Triton model computes those; this
package never imports torch, so the worker can run it). Thresholds come from ``GateSettings``
(``ATELIER_GATE_*``), calibrated on a held-out split by ``python -m bench.gate``.
"""

from quality.gate import judge_job
from quality.settings import GateSettings
from quality.verdict import Check, Verdict

__all__ = ["Check", "GateSettings", "Verdict", "judge_job"]
