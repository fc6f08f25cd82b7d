"""Every fault scenario by name, in the order ``python -m bench.faults`` runs them (the issue's
numbering: 1 worker kills, 2 Triton, 3 S3, 4 RabbitMQ, 5 callback receiver, 6 poison messages,
7 crash loop, 8 cancel race, 9 a worker SIGKILLed between the quality gate and the upload,
10 reviewers' decisions racing a cancel)."""

from __future__ import annotations

from bench.faults.queue_scenarios import cancel_race, crash_loop, poison_messages
from bench.faults.review_scenarios import review_decision_cancel_race, sigkill_between_gate_and_upload
from bench.faults.scenarios import (
    Scenario,
    callback_receiver_faults,
    rabbitmq_restart,
    s3_restart,
    triton_restart,
    worker_sigkill,
)

SCENARIOS: dict[str, Scenario] = {
    "worker_sigkill": worker_sigkill,
    "triton_restart": triton_restart,
    "s3_restart": s3_restart,
    "rabbitmq_restart": rabbitmq_restart,
    "callback_receiver_faults": callback_receiver_faults,
    "poison_messages": poison_messages,
    "crash_loop": crash_loop,
    "cancel_race": cancel_race,
    "sigkill_between_gate_and_upload": sigkill_between_gate_and_upload,
    "review_decision_cancel_race": review_decision_cancel_race,
}
