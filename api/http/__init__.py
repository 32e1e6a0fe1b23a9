"""The HTTP API (litestar): thin routes over the use cases and the read models."""
