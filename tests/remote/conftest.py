"""Fixtures of the remote tests: ``serve`` starts a real server (see ``_servers``)."""

from _servers import serve

__all__ = ["serve"]
