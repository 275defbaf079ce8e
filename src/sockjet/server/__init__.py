"""The Socket.IO server runtime: Server, Namespace, Socket, Client, broadcasts and acks."""

from __future__ import annotations

from sockjet.server.acks import BroadcastAckTimeout, ack_requested
from sockjet.server.adapter import Adapter, AdapterFactory, SocketDetails
from sockjet.server.broadcast import BroadcastOperator, RemoteSocket
from sockjet.server.client import Client
from sockjet.server.handshake import Handshake
from sockjet.server.namespace import Namespace, ParentNamespace
from sockjet.server.recovery import ConnectionStateRecovery
from sockjet.server.server import RunningServer, Server
from sockjet.server.socket import Socket, SocketEmitter
from sockjet.server.targets import BroadcastFlags, BroadcastOptions

__all__ = [
    "Adapter",
    "AdapterFactory",
    "BroadcastAckTimeout",
    "BroadcastFlags",
    "BroadcastOperator",
    "BroadcastOptions",
    "Client",
    "ConnectionStateRecovery",
    "Handshake",
    "Namespace",
    "ParentNamespace",
    "RemoteSocket",
    "RunningServer",
    "Server",
    "Socket",
    "SocketDetails",
    "SocketEmitter",
    "ack_requested",
]
