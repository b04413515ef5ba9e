"""The fast layer of in-process tests of every use-case (see conftest.py)."""
