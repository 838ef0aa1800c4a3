"""The HTTP face of Sheratan: a Litestar app over a home, served by uvicorn (``serve``).

Importing this package imports no web framework: the CLI reads these defaults at start."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001
