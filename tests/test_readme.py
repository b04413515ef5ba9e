"""The README stays true: its set-up commands are what CI runs, and it names every route."""

from __future__ import annotations

import re
from pathlib import Path

from gateway import rest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_start_and_test_commands():
    start, test = [block.strip() for block in shell_blocks()[:2]]
    assert start.endswith("messenger-gateway")
    assert test.endswith("pytest")


def test_ci_runs_the_readme_test_command():
    test_command = shell_blocks()[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()


def test_readme_documents_every_route():
    for route in rest.routes:
        assert route.path.lstrip("/") in README, route.path
