"""Messenger Gateway: Facebook Pages in, MongoDB store, Graph API out, Airy-compatible API."""

__version__ = "0.1.0"
