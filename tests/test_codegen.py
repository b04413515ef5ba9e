"""GraphQL Code Generator and tsc, as a front-end team runs them: types generated from the schema
the code prints (not the committed file, which the lead regenerates) and the operations in
tests/codegen/operations/, and a client (tests/codegen/client.ts) that switches on the content
union's `__typename` without casts and sends through the @oneOf input must compile."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CODEGEN = Path(__file__).resolve().parent / "codegen"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of tests/codegen (its node_modules linked), so that nothing is written in the
    repository, with the schema printed from the code beside it."""
    if shutil.which("node") is None or not (CODEGEN / "node_modules" / ".bin" / "tsc").exists():
        pytest.skip("Node or tests/codegen/node_modules missing (npm ci in tests/codegen)")
    for name in ("codegen.yml", "client.ts", "tsconfig.json", "package.json"):
        shutil.copy(CODEGEN / name, tmp_path / name)
    shutil.copytree(CODEGEN / "operations", tmp_path / "operations")
    (tmp_path / "node_modules").symlink_to(CODEGEN / "node_modules")
    schema = subprocess.run([sys.executable, "-m", "gateway.graphql"], capture_output=True,
                            text=True, check=True, timeout=60).stdout
    (tmp_path / "schema.graphql").write_text(schema)
    return tmp_path


def run(project: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(project / "node_modules" / ".bin" / command[0]), *command[1:]],
                          cwd=project, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "SCHEMA": "schema.graphql",
                               "HOME": str(project)})


def test_generated_types_compile_a_client_of_the_content_union(project: Path):
    generated = run(project, "graphql-codegen", "--config", "codegen.yml")
    assert generated.returncode == 0, generated.stdout + generated.stderr
    types = (project / "generated" / "graphql.ts").read_text()
    # The union's members carry their __typename as a literal, and the @oneOf input is a union
    # of one-field shapes: what lets tsc narrow without casts.
    assert "__typename: 'TextContent'" in types
    assert "export type OutgoingMessage =\n" in types
    compiled = run(project, "tsc", "--noEmit", "-p", ".")
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


def test_a_client_that_misses_a_content_type_does_not_compile(project: Path):
    """The check can fail: the client with one case of the union taken out."""
    client = project / "client.ts"
    text = client.read_text()
    start = text.index('    case "ReactionContent":')
    end = text.index('    case "UnknownContent":')
    client.write_text(text[:start] + text[end:])
    assert run(project, "graphql-codegen", "--config", "codegen.yml").returncode == 0
    compiled = run(project, "tsc", "--noEmit", "-p", ".")
    assert compiled.returncode != 0 and "never" in compiled.stdout, compiled.stdout
