"""Every shell example in the README and docs/ runs, with bash, against a real gateway and the
fake Graph API, and every curl in it must answer 2xx: an example that answers 405 cannot ship.

A page's ```sh blocks run in order in one shell (an id captured in one block serves the next),
in a scratch directory with the checkout importable; `http://127.0.0.1:8000` in a block becomes
the gateway's URL, and the shell has `G`, `FACEBOOK_APP_SECRET`, `FACEBOOK_WEBHOOK_SECRET` and
`FACEBOOK_GRAPH_API_URL` of that gateway. A block that cannot run here says why on the line
before it: `<!-- not run: <reason> -->`.

Before a page runs, the world a reader's gateway would have is made: the Graph API knows the page
the examples connect (1234567890, "My Shop", token `EAA…`), a user token managing it (`<a Facebook
user token>`) and the profiles of 4242 (Ada Lovelace), 4243 and 4244; and 4243 and 4244 have
written to another connected page (one reply failed), so the examples find conversations,
messages and a failed send to work on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import payloads
from tests.conftest import APP_SECRET, VERIFY_TOKEN, connect_page, wait_for

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->")
# Where the examples say the gateway listens; the harness's gateway is elsewhere.
DOCS_URL = "http://127.0.0.1:8000"

# Each curl appends a line to $DOC_LOG: where (page:line), HTTP status, arguments, answer.
# A curl that gets no answer or not a 2xx fails (the script stops there, as `set -e` says).
HARNESS = r"""
set -eo pipefail
curl() {
  local answer status
  answer=$(mktemp)
  status=$(command curl -sS -o "$answer" -w '%{http_code}' "$@") || status=000
  cat "$answer"
  jq -cn --arg at "$DOC_AT" --arg status "$status" --arg args "$*" \
    --rawfile answer "$answer" '{$at, $status, $args, $answer}' >> "$DOC_LOG"
  rm -f "$answer"
  [[ $status == 2?? ]] || return 22
}
"""


@dataclass
class Block:
    page: Path
    line: int
    text: str
    not_run: str | None  # why, when it cannot run here

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text().splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() == "```sh":
            end = lines.index("```", index + 1)
            before = next((line for line in reversed(lines[:index]) if line.strip()), "")
            reason = NOT_RUN.search(before)
            found.append(Block(page, index + 1, "\n".join(lines[index + 1:end]) + "\n",
                               reason.group(1).strip() if reason else None))
            index = end
        index += 1
    return found


def pages_with_examples() -> list[Path]:
    return [page for page in PAGES if blocks(page)]


def script(page: Path, url: str) -> str:
    """The page's runnable blocks as one bash script, each marking where it comes from."""
    parts = [HARNESS]
    for block in blocks(page):
        if block.not_run is None:
            parts.append(f"DOC_AT={block.where}\n" + block.text.replace(DOCS_URL, url))
    return "\n".join(parts)


@dataclass
class Outcome:
    calls: list[dict[str, str]]
    returncode: int
    output: str

    def failures(self) -> list[str]:
        """Each call that did not answer 2xx, or a GraphQL answer that holds errors."""
        bad = []
        for call in self.calls:
            answer = call["answer"][:400].strip()
            if not call["status"].startswith("2"):
                bad.append(f"{call['at']}: curl {call['args']} → {call['status']} {answer}")
            elif "/graphql" in call["args"] and '"errors"' in call["answer"]:
                bad.append(f"{call['at']}: curl {call['args']} → {answer}")
        return bad


def run(source: str, gateway, tmp_path: Path, timeout: float = 120) -> Outcome:
    """Run in a scratch directory (the checkout importable), so that an example marked wrongly
    (an install, a server) can neither change the checkout nor outlive the test."""
    log = tmp_path / "calls.jsonl"
    log.write_text("")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {
        **os.environ,
        # The venv's python and messenger-gateway first, as for a reader who activated it.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT), "G": gateway.url, "DOC_LOG": str(log),
        "FACEBOOK_APP_SECRET": APP_SECRET, "FACEBOOK_WEBHOOK_SECRET": VERIFY_TOKEN,
        "FACEBOOK_GRAPH_API_URL": gateway.env["FACEBOOK_GRAPH_API_URL"],
    }
    with subprocess.Popen(["bash", "-c", source], cwd=scratch, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          start_new_session=True) as shell:
        try:
            output, _ = shell.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGKILL)
            output = shell.communicate()[0] + f"\n(killed after {timeout} s)"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return Outcome(calls, shell.returncode, output[-3000:])


def make_world(gateway, graph) -> None:
    """What a reader's gateway holds when the examples run (see the module's docstring)."""
    graph.add_page("1234567890", "EAA…", "My Shop")
    graph.add_user("<a Facebook user token>", ["1234567890"])
    graph.add_profile("4242", "Ada", "Lovelace")
    graph.add_profile("4243", "Alan", "Turing")
    graph.add_profile("4244", "Grace", "Hopper")
    page = connect_page(gateway, graph, "5550001234", "EAAcorner", name="Corner Shop")
    page_id = page["source_channel_id"]
    for psid, text in (("4243", "Is the shop open on Sunday?"), ("4244", "Do you deliver?")):
        event = payloads.text(page_id, psid, text)
        assert gateway.webhook(payloads.envelope(page_id, event)).status_code == 200
    newest = gateway.post("/conversations.list").json()["data"][0]
    graph.fail("send", "bad_param")
    failed = gateway.post("/messages.send", {"conversation_id": newest["id"],
                                             "message": {"text": "We do, within 5 km."}})
    assert failed.status_code == 200, failed.text
    wait_for(lambda: gateway.post("/messages.list", {"conversation_id": newest["id"]})
             .json()["data"][0]["state"] == "failed")


needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="the examples use jq")


@needs_jq
@pytest.mark.parametrize("page", pages_with_examples(), ids=lambda page: page.name)
def test_the_examples_run(page: Path, gateway, graph, tmp_path: Path):
    if all(block.not_run for block in blocks(page)):
        pytest.skip("; ".join(sorted({str(block.not_run) for block in blocks(page)})))
    make_world(gateway, graph)
    outcome = run(script(page, gateway.url), gateway, tmp_path)
    assert outcome.calls, f"no curl ran:\n{outcome.output}"
    assert not outcome.failures(), "\n".join(outcome.failures())
    assert outcome.returncode == 0, outcome.output


def test_few_examples_are_not_run_and_each_says_why():
    skipped = [block for page in PAGES for block in blocks(page) if block.not_run is not None]
    assert all(len(block.not_run or "") >= 10 for block in skipped), \
        [block.where for block in skipped]
    assert len(skipped) <= 10, [block.where for block in skipped]


@needs_jq
def test_an_example_that_answers_405_fails(gateway, tmp_path: Path):
    """The harness's own check: the README's old `curl -s $G/tags.list` (a GET) is caught."""
    outcome = run(HARNESS + "DOC_AT=here:1\ncurl -s $G/tags.list\necho not reached\n",
                  gateway, tmp_path)
    assert outcome.failures() == [
        f"here:1: curl -s {gateway.url}/tags.list → 405 {outcome.calls[0]['answer'].strip()}"]
    assert outcome.returncode != 0 and "not reached" not in outcome.output
