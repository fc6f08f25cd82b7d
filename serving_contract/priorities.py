"""The request priority levels every model's dynamic batcher keeps.

A shopper waits for a try-on; a listing backfill may queue for hours. ``product_cgan`` serves
both (a try-on's garment is generated from its attributes), so its queue orders requests by
priority: Triton's dynamic batcher takes level 1 before level 2 and forms its next batch from
the front. ``export`` writes the levels into every ``config.pbtxt`` and the worker sends the
level with each request (``tritonclient``'s ``priority=``), from these numbers.
"""

from __future__ import annotations

#: a try-on's requests: served before any queued bulk request
INTERACTIVE = 1
#: listing (backfill) requests, and any request that names no priority (Triton's ``priority=0``)
BULK = 2
#: the number of levels each model's batcher keeps
LEVELS = 2
