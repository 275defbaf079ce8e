"""The servers of the side-by-side runs: each implements one contract (see :mod:`bench.servers.registry`)."""
