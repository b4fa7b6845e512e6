"""Outbound webhooks: tell clients about their jobs without their polling.

- ``store``: the tables (endpoints, the default secret, the outbox, deliveries);
- ``signing``: Standard Webhooks signatures;
- ``payload``: the event body (OpenAI's event shape, reelgate's job as ``data``);
- ``dispatch``: the worker loops that fan the outbox out and send deliveries.

The outbox is filled by a trigger on ``job_events`` (migration 0014), in the
transaction of the change itself. The API side is ``api.routes_webhooks``; operators
use ``reelgate webhooks``. docs/webhooks.md is the guide for receivers.
"""
