"""Watching a running server through its public hooks: the official Socket.IO Admin UI
(:mod:`sockjet.observe.admin`) and Prometheus metrics (:mod:`sockjet.observe.metrics`).

Both are built only on ``io.hooks`` and ``io.engine.hooks`` and the public API, never on the
server's internals; a server that is not observed pays nothing for them.
"""
