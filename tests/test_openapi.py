"""The REST contract: schema/openapi.yaml is what the code serves, and schemathesis finds no 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from gateway import rest
from gateway.rest import openapi
from tests import payloads
from tests.conftest import connect_page

ROOT = Path(__file__).resolve().parent.parent


def test_the_schema_file_matches_the_code():
    assert yaml.safe_load((ROOT / "schema" / "openapi.yaml").read_text()) == openapi.build(), \
        "regenerate with: python -m gateway.rest.openapi > schema/openapi.yaml"


def test_every_route_is_in_the_document_and_served(gateway):
    served = gateway.http.get("/openapi.json").json()
    assert served == openapi.build()
    assert sorted(served["paths"]) == sorted(route.path for route in rest.routes)


def test_schemathesis_finds_no_server_error(gateway, graph):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    gateway.webhook(payloads.envelope(page, payloads.text(page, "4343", "seed")))
    schemathesis = Path(sys.executable).with_name("schemathesis")
    out = subprocess.run(
        [str(schemathesis), "run", f"{gateway.url}/openapi.json", "--url", gateway.url,
         "--checks", "not_a_server_error,response_schema_conformance", "--max-examples", "40",
         "--request-timeout", "10", "--seed", "1"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"},
    )
    print(out.stdout[-3000:])
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
