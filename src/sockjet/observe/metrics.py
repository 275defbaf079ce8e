"""Prometheus metrics of a sockjet server, counted by its observation hooks.

``sockjet.Server(metrics=True)`` (or ``metrics=MetricsOptions(...)``) serves them at ``/metrics``
on the native server and the ASGI app; ``sockjet chat --metrics`` turns them on for the chat. They
need the ``prometheus_client`` package: ``pip install "sockjet[metrics]"``.

How they are counted, and what it costs: gauges (clients, sockets, rooms) are read from the
server when Prometheus scrapes, and cost nothing in between. The traffic counters are the
server's own (``nsp.stats``, ``io.engine.stats``: plain integers, bumped once per packet, a
broadcast once with its number of recipients, never per recipient nor byte by byte), read at
scrape time: metrics add nothing per packet. Disconnections, closed connections and broker round
trips come through the server's observation hooks. Handler durations (``handler_seconds``) cost
two clock reads and a histogram update per event, so they are off unless asked for. docs/observability.md lists the metrics and gives queries for Grafana.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

try:
    import prometheus_client
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError as exc:  # pragma: no cover - the extra is installed in development
    raise ImportError(
        'Server(metrics=...) needs prometheus_client: pip install "sockjet[metrics]"'
    ) from exc

from sockjet.engine.io import EngineSocket, HTTPRequest, HTTPResponse
from sockjet.server.namespace import Namespace
from sockjet.server.socket import Socket

if TYPE_CHECKING:
    from sockjet.server.server import Server

__all__ = ["DEFAULT_BUCKETS", "Metrics", "MetricsOptions"]

DEFAULT_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
"""Seconds: the buckets of the duration histograms (handlers, broker round trips)."""


@dataclass(frozen=True, slots=True)
class MetricsOptions:
    """What ``Server(metrics=...)`` takes besides ``True``."""

    path: str = "/metrics"
    """Where they are served (on the server's own port)."""
    handler_seconds: bool = False
    """Time every event handler (``sockjet_handler_seconds``, label ``event``): costs a little
    on every event, hence off by default."""
    process: bool = True
    """Also export the process's CPU, memory and open files (``process_*``)."""
    registry: CollectorRegistry | None = None
    """Register into this registry (e.g. ``prometheus_client.REGISTRY``, to serve them with the
    rest of an application's metrics); a private one by default, served at ``path``."""


class Metrics(Collector):
    """The metrics of one server: a ``prometheus_client`` collector fed by the server's hooks.

    ``await metrics.handle(request)`` answers a scrape; the server routes ``options.path`` to it.
    :meth:`close` removes the hooks (``Server.close()`` does not: the last scrape after a
    shutdown still sees the final counts).
    """

    def __init__(self, io: Server, options: MetricsOptions | None = None) -> None:
        options = options or MetricsOptions()
        self.io = io
        self.options = options
        self.path = options.path
        registry = options.registry
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        """Where these metrics are registered (and what :meth:`handle` serves)."""
        # counted by the hooks (rare events), read at scrape time
        self._disconnects: dict[str, int] = {}
        # what namespaces removed since (empty dynamic children) had counted: counters never
        # go back
        self._removed: dict[str, list[int]] = {}
        self._sessions_closed: dict[str, int] = {}
        hooks, engine_hooks = io.hooks, io.engine.hooks
        hooks.on_socket_disconnected(self._on_socket_disconnected)
        hooks.on_namespace_removed(self._on_namespace_removed)
        hooks.on_broker_round_trip(self._on_broker_round_trip)
        engine_hooks.on_session_closed(self._on_session_closed)
        self._handler_seconds: prometheus_client.Histogram | None = None
        if options.handler_seconds:
            self._handler_seconds = prometheus_client.Histogram(
                "sockjet_handler_seconds",
                "Seconds an event's handler took (a coroutine handler: until it finished).",
                ["event"],
                buckets=DEFAULT_BUCKETS,
                registry=self.registry,
            )
            hooks.on_event_handled(self._on_event_handled)
        self._broker = prometheus_client.Histogram(
            "sockjet_adapter_round_trip_seconds",
            "Seconds a request to the other servers of the cluster took (fetch_sockets, "
            "server_side_emit with ack...), through the adapter's broker.",
            buckets=DEFAULT_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(self)
        if options.process and registry is None:
            prometheus_client.ProcessCollector(registry=self.registry)
        self._closed = False

    def close(self) -> None:
        """Remove the hooks and unregister (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for hook in (
            self._on_socket_disconnected,
            self._on_namespace_removed,
            self._on_broker_round_trip,
            self._on_event_handled,
        ):
            self.io.hooks.remove(hook)
        self.io.engine.hooks.remove(self._on_session_closed)
        self.registry.unregister(self)

    # -- the hooks ----------------------------------------------------------------------------

    def _on_namespace_removed(self, nsp: Namespace) -> None:
        stats = nsp.stats
        counts = self._removed.setdefault(nsp.name, [0, 0, 0, 0])
        counts[0] += stats.events_received
        counts[1] += stats.events_sent
        counts[2] += stats.bytes_received
        counts[3] += stats.bytes_sent

    def _on_socket_disconnected(self, socket: Socket, reason: str) -> None:
        counts = self._disconnects
        counts[reason] = counts.get(reason, 0) + 1

    def _on_session_closed(self, conn: EngineSocket, reason: str) -> None:
        counts = self._sessions_closed
        counts[reason] = counts.get(reason, 0) + 1

    def _on_event_handled(self, socket: Socket, event: str, seconds: float) -> None:
        histogram = self._handler_seconds
        if histogram is not None:
            histogram.labels(event).observe(seconds)

    def _on_broker_round_trip(self, nsp: Namespace, request: str, seconds: float) -> None:
        self._broker.observe(seconds)

    # -- scraping -------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """What Prometheus gets: gauges read now, counters from the hooks' integers."""
        io = self.io
        engine = io.engine
        by_transport = {"polling": 0, "websocket": 0}
        for session in list(engine.sessions.values()):
            transport = session.transport
            by_transport[transport] = by_transport.get(transport, 0) + 1
        clients = GaugeMetricFamily(
            "sockjet_connected_clients",
            "Engine.IO connections open now, by transport.",
            labels=["transport"],
        )
        for transport, count in sorted(by_transport.items()):
            clients.add_metric([transport], count)
        yield clients

        namespaces = io.namespaces
        sockets = GaugeMetricFamily(
            "sockjet_namespace_sockets",
            "Sockets connected now, by namespace.",
            labels=["namespace"],
        )
        rooms = 0
        for name, nsp in sorted(namespaces.items()):
            sockets.add_metric([name], len(nsp.sockets))
            rooms += nsp.adapter.room_count()
        yield sockets
        yield GaugeMetricFamily(
            "sockjet_rooms",
            "Rooms with sockets on this server now, every namespace (sockets' own rooms not "
            "counted).",
            value=rooms,
        )

        received = CounterMetricFamily(
            "sockjet_events_received",
            "Events received from clients, by namespace.",
            labels=["namespace"],
        )
        sent = CounterMetricFamily(
            "sockjet_events_sent",
            "Events sent to clients (a broadcast counts once per recipient), by namespace.",
            labels=["namespace"],
        )
        totals = {name: list(counts) for name, counts in self._removed.items()}
        for name, nsp in namespaces.items():
            stats = nsp.stats
            counts = totals.setdefault(name, [0, 0, 0, 0])
            counts[0] += stats.events_received
            counts[1] += stats.events_sent
            counts[2] += stats.bytes_received
            counts[3] += stats.bytes_sent
        bytes_in = bytes_out = 0
        for name, (events_in, events_out, name_bytes_in, name_bytes_out) in sorted(totals.items()):
            received.add_metric([name], events_in)
            sent.add_metric([name], events_out)
            bytes_in += name_bytes_in
            bytes_out += name_bytes_out
        yield received
        yield sent
        yield CounterMetricFamily(
            "sockjet_bytes_received",
            "Bytes of Socket.IO packets received from clients (attachments included).",
            value=bytes_in,
        )
        yield CounterMetricFamily(
            "sockjet_bytes_sent",
            "Bytes of Socket.IO packets sent to clients, once per recipient.",
            value=bytes_out,
        )
        yield _by_label(
            "sockjet_disconnects",
            "Sockets disconnected, by reason (the reason the disconnect handlers get).",
            "reason",
            self._disconnects,
        )
        yield _by_label(
            "sockjet_connections_closed",
            "Engine.IO connections closed, by reason.",
            "reason",
            self._sessions_closed,
        )
        flow = engine.stats
        yield CounterMetricFamily(
            "sockjet_slow_consumer_disconnects",
            "Clients closed because they did not take what they were sent.",
            value=flow.slow_consumers,
        )
        yield CounterMetricFamily(
            "sockjet_volatile_dropped",
            "Volatile packets not queued (the client was not writable or over its high-water "
            "mark), per recipient.",
            value=flow.volatile_dropped,
        )

    async def handle(self, request: HTTPRequest) -> HTTPResponse:
        """Answer a scrape (the text exposition format, or OpenMetrics when asked for)."""
        accept = request.headers.get("accept", "")
        generate, content_type = prometheus_client.exposition.choose_encoder(accept)
        body = generate(self.registry)
        return HTTPResponse(200, [("Content-Type", content_type)], body)


def _by_label(name: str, documentation: str, label: str, counts: dict[str, int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family
