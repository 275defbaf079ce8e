"""The benchmark contract's server (:func:`bench.servers.sockjet_server.build`) as a
``sockjet serve`` target, for ``--workers N``:

``sockjet serve bench.servers.sockjet_workers:io --port P --workers N``
"""

from __future__ import annotations

from bench.servers.sockjet_server import build

io = build()
