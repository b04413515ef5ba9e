"""The store: MongoDB repositories over PyMongo's async API. Mongo documents stay in here."""

from gateway.store.mongo import Store

__all__ = ["Store"]
