"""The Airy-compatible REST adapter."""

from gateway.rest.routes import READ_PATHS, routes

__all__ = ["routes", "READ_PATHS"]
