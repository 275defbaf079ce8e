"""The load generator: cheap Engine.IO/Socket.IO clients (WebSocket and polling) and probes."""
