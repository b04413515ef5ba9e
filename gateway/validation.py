"""One check for every JSON body that comes in: can MongoDB store it as it is?

Run at the edge, before any side effect, so a body that cannot be stored is refused whole with a
400 instead of failing half-way through with a 500.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gateway.errors import InvalidInput

MAX_DEPTH = 64
INT64 = 2**63


def load_json(raw: bytes | str, what: str = "request body") -> Any:
    """Parse JSON that came in (a REST or GraphQL body, a websocket message) and `check_storable`
    it: whatever is wrong raises `InvalidInput` saying what, never another error."""
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidInput(f"{what} is not valid JSON: it is not UTF-8 text") from None
    except RecursionError:  # the parser's own limit, far above MAX_DEPTH
        raise InvalidInput(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:
        raise InvalidInput(f"{what} is not valid JSON") from None
    check_storable(data, what)
    return data


def check_storable(value: Any, what: str = "request body") -> None:
    """Raise `InvalidInput` if `value` holds what BSON cannot carry or is nested too deeply."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(f"{what} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, what)
                if "\x00" in key:
                    raise InvalidInput(f"{what} has a field name with a NUL character")
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item, what)
        elif isinstance(item, int) and not isinstance(item, bool):
            if not -INT64 <= item < INT64:
                raise InvalidInput(f"{what} has an integer outside the 64-bit range")
        elif isinstance(item, float) and not math.isfinite(item):
            # JSON has no NaN or Infinity (Python's parser lets them in, and 1e400 overflows).
            raise InvalidInput(f"{what} has a number that is not finite")


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} has text that is not valid Unicode (a lone surrogate)") \
            from None


def check_field_names(value: Any, what: str) -> None:
    """Keys that become MongoDB field paths: not empty, no `.`, not starting with `$`."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not key or "." in key or key.startswith("$"):
                    raise InvalidInput(
                        f"{what}: field name {key!r} must be non-empty, without '.' and not "
                        "starting with '$'"
                    )
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
