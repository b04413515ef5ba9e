"""The fake Graph API the tests run on loopback: the sandbox's simulator (gateway/sandbox/graph.py)."""

from gateway.sandbox.graph import FAILURES, Call, FakeGraph, FakeGraphServer

__all__ = ["FAILURES", "Call", "FakeGraph", "FakeGraphServer"]
