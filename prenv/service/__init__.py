"""``prenv serve``: the long-running service that turns GitHub webhooks into per-PR reconciles.

Layers, imported one way: ``app`` (HTTP) → ``service`` (queue, resync, drain, outcome wiring) → ``reconcile``.
``webhooks``, ``ttl`` and ``feedback`` rendering are pure and tested on their own.
"""
