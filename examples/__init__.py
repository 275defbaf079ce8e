"""sockjet examples; importable from the repository root (``sockjet serve examples.hello:io``)."""
