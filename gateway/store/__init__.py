"""The store: what the use-cases ask of it (`ports`), MongoDB's implementation over PyMongo's
async API (`mongo`; Mongo documents stay in there), and an in-memory one for the fast tests
(`memory`)."""

from gateway.store.mongo import Store
from gateway.store.ports import StorePort

__all__ = ["Store", "StorePort"]
