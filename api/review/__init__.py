"""Human review of generated listing images (issue 14): who looks, what they decided, and the
routes a reviewer's console calls. One concept per module:

- ``tables``: ``review_policies`` and the append-only ``review_decisions`` (PostgreSQL, beside
  the key store; migration ``v0003_review``); ``database``: sessions on them;
- ``policies``: each requester's policy, and the API's short-lived copy read on every submission;
- ``audit``: the trail of decisions that applied;
- ``decide``: applying decisions, audited, atomic against a cancel and other reviewers;
- ``queue``: the images waiting for people across a tenant, a page at a time;
- ``resources``, ``routes``: ``/v1/review``; ``desk``: the services the routes use, per app;
- ``cli``: ``atelier review``.

The rules themselves (which images are held, when a review ends) are the core's
(``core.jobs.review``), shared with the worker.
"""
