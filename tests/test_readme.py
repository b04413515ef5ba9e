"""The docs stay true: the README's set-up commands are what CI runs, the API reference names every
route, and every link between the pages leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from gateway import rest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
API = (ROOT / "docs" / "api.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)


def anchors(page: Path) -> set[str]:
    """The fragment GitHub gives each heading (code blocks' `#` comments are not headings)."""
    found: set[str] = set()
    fenced = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_readme_opens_with_start_and_test_commands():
    start, test = [block.strip() for block in shell_blocks()[:2]]
    assert start.endswith("messenger-gateway --sandbox")
    assert test.endswith("pytest")


def test_ci_runs_the_readme_test_command():
    test_command = shell_blocks()[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()


def test_docs_document_every_route():
    for route in rest.routes:
        assert route.path.lstrip("/") in README + API, route.path


def test_links_between_pages_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # another site
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target}"
            if fragment:
                assert fragment in anchors(linked), f"{page.name}: {target}"
