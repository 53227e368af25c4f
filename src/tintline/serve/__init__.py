"""The HTTP API and web page for colorizing line art (``tintline serve``)."""

from .app import create_app, run_server

__all__ = ["create_app", "run_server"]
