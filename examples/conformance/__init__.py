"""Servers for the official Engine.IO and Socket.IO protocol test suites (see server.py)."""
