"""Why a job failed, or a message was refused: the ``code`` that job records, ``job.failed``
callbacks, dead-letter headers and logs carry. One enum, so a code is never a stray string."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable failure reasons. Retryable ones may succeed on a later attempt."""

    #: Triton unreachable, unavailable or overloaded (retryable)
    INFERENCE_UNAVAILABLE = "inference_unavailable"
    #: Triton did not answer within the client timeout (retryable)
    INFERENCE_TIMEOUT = "inference_timeout"
    #: Triton answered with an internal error (retryable: it may be a transient fault)
    INFERENCE_FAILED = "inference_failed"
    #: Triton refused the inputs: INVALID_ARGUMENT names the tensor and rule (permanent)
    INFERENCE_REJECTED = "inference_rejected"
    #: the model or the requested version is not served (permanent)
    MODEL_NOT_FOUND = "model_version_not_found"
    #: an operator asked for a default version Triton has not loaded and ready (permanent)
    VERSION_REFUSED = "version_refused"
    #: S3 unreachable or answering 5xx (retryable)
    STORAGE_UNAVAILABLE = "storage_unavailable"
    #: S3 refused the credentials or the request (permanent until an operator fixes the config)
    STORAGE_REJECTED = "storage_rejected"
    #: an object that should exist does not (permanent)
    OBJECT_NOT_FOUND = "object_not_found"
    #: a try-on names a listing image that does not exist (permanent)
    GARMENT_NOT_FOUND = "garment_not_found"
    #: a try-on names a listing job that has not finished yet (retryable)
    GARMENT_NOT_READY = "garment_not_ready"
    #: a try-on names a listing of shoes or bags, which cannot be worn (permanent)
    GARMENT_NOT_WEARABLE = "garment_not_wearable"
    #: the request names a category, colour, pattern or size that the model version it runs on does
    #: not know (permanent; a submit is checked against the version it resolves then, so a job
    #: fails with it only when the default version changed between its submit and its run)
    UNKNOWN_CONDITION = "unknown_condition"
    #: the message's request does not validate (permanent; the producer never sends one)
    INVALID_REQUEST = "invalid_request"
    #: no variant of the listing passed the quality gate in its tries, and no person reviews it
    #: (review policy ``auto``; permanent: the same request makes the same images)
    QUALITY_GATE_FAILED = "quality_gate_failed"
    #: the job ran past the task's soft time limit (permanent: a retry would run as long)
    JOB_TIME_LIMIT = "job_time_limit"
    #: the job's message was redelivered more often than ``job_retry_attempts`` allows
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    #: the job stayed ``running`` past its lease with no live worker, or ``queued`` with no message
    JOB_STUCK = "job_stuck"
    #: the broker refused a callback message (retryable)
    CALLBACK_ENQUEUE_FAILED = "callback_enqueue_failed"
    #: the callback URL is refused (scheme, credentials, a private address) (permanent)
    CALLBACK_URL_REFUSED = "callback_url_refused"
    #: the callback host does not resolve (retryable)
    CALLBACK_UNRESOLVED = "callback_unresolved"
    #: no signing secret for the requester (permanent until configured)
    CALLBACK_SECRET_MISSING = "callback_secret_missing"
    #: the status store (Redis) did not answer (retryable)
    STORE_UNAVAILABLE = "store_unavailable"
    #: no record for the job id (never created, or expired)
    JOB_NOT_FOUND = "job_not_found"
    #: a record kept changing under a compare-and-set (retryable)
    STORE_CONFLICT = "store_conflict"
    #: an idempotency key reused with another request (the submitter's refusal, never in a job record)
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    #: a caller's admission check (the API's per-key rate or quota) refused the job at submit,
    #: before anything of it was written (the submitter's refusal, never in a job record)
    ADMISSION_REFUSED = "admission_refused"
    #: the broker did not confirm the job's message: the job never ran (retryable: submit again)
    PUBLISH_FAILED = "publish_failed"
    #: a watch reached its timeout before the job ended
    WATCH_TIMEOUT = "watch_timeout"
    #: a task message over ``max_message_bytes`` (dead-lettered unread)
    MESSAGE_TOO_LARGE = "message_too_large"
    #: a message without Celery's task header
    NOT_A_TASK_MESSAGE = "not_a_task_message"
    #: a message for a task this worker does not have
    UNKNOWN_TASK = "unknown_task"
    #: a message body that is not JSON by its content type
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
    #: a message body that does not parse as UTF-8 JSON
    NOT_JSON = "not_json"
    #: a task message whose arguments are not the task's
    INVALID_ARGUMENTS = "invalid_arguments"
    #: a callback's signature, timestamp or body did not verify at the receiver
    #: (``producer.webhook_verify``; the receiver's own refusal, never in a job record)
    WEBHOOK_VERIFICATION_FAILED = "webhook_verification_failed"
    #: a publishable key asked for a scope beyond submitting try-ons and reading (``api.keys``;
    #: the key store's refusal, never in a job record)
    SCOPE_NOT_ALLOWED = "scope_not_allowed"
    #: no API key with that id (``api.keys``; never in a job record)
    KEY_NOT_FOUND = "key_not_found"
    #: the key store (PostgreSQL) did not answer (retryable; never in a job record)
    KEY_STORE_UNAVAILABLE = "key_store_unavailable"
    #: an exception the code has no type for: a bug (permanent)
    INTERNAL_ERROR = "internal_error"
