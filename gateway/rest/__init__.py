"""The Airy-compatible REST adapter."""

from gateway.rest.routes import routes

__all__ = ["routes"]
