"""The deployment files say what production needs: a replica set, two replicas, a balancer; the
compose clients accept them with a filled .env and name each missing secret without one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SECRETS = ("FACEBOOK_APP_ID", "FACEBOOK_APP_SECRET", "FACEBOOK_WEBHOOK_SECRET", "SYSTEM_TOKEN")
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
NGINX = (ROOT / "deploy" / "nginx.conf").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_mongodb_runs_as_a_replica_set_that_initialises_itself():
    mongo = COMPOSE["services"]["mongo"]
    assert mongo["image"].startswith("mongo:")
    assert "--replSet" in mongo["command"]
    probe = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in probe and "isWritablePrimary" in probe
    assert any(v.endswith(":/data/db") for v in mongo["volumes"])
    assert "mongo-data" in COMPOSE["volumes"]


def test_two_gateway_replicas_share_the_replica_set():
    gateway = COMPOSE["services"]["gateway"]
    assert gateway["build"] == "."
    # docker compose (v2) reads deploy.replicas, docker-compose 1.x only scale: both say two.
    assert gateway["deploy"]["replicas"] == gateway["scale"] == 2
    assert "replicaSet=rs0" in gateway["environment"]["MONGODB_URL"]
    assert gateway["depends_on"]["mongo"]["condition"] == "service_healthy"


def test_the_proxy_balances_http_and_websockets():
    proxy = COMPOSE["services"]["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in proxy["volumes"]
    # nginx sends traffic to the port the gateway listens on.
    assert f"server gateway:{COMPOSE['services']['gateway']['environment']['PORT']}" in NGINX
    assert "proxy_set_header Upgrade $http_upgrade" in NGINX
    assert "proxy_set_header Connection $connection_upgrade" in NGINX
    assert re.search(r"proxy_read_timeout\s+1h", NGINX)


def test_every_setting_comes_from_the_env_file_and_is_documented():
    documented = set(re.findall(r"^([A-Z_]+)=", ENV_EXAMPLE, flags=re.M))
    environment = COMPOSE["services"]["gateway"]["environment"]
    used = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE_TEXT))
    assert used == documented  # each one documented, and each documented one used
    for secret in SECRETS:
        # Required: a message naming it, and the others to fill in, when it is missing.
        assert re.fullmatch(rf"\$\{{{secret}:\?set {secret} in \.env .*\}}", environment[secret])
        for other in SECRETS:
            assert other in environment[secret]
    # Each variable has a comment line above it saying what it is.
    lines = ENV_EXAMPLE.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z_]+=", line):
            assert lines[index - 1].startswith("#"), line


def test_the_image_is_slim_and_runs_unprivileged():
    assert "FROM python:3.11-slim" in DOCKERFILE
    user = re.search(r"^USER (\S+)", DOCKERFILE, flags=re.M)
    assert user and user.group(1) not in ("root", "0")


def healthcheck() -> list[str]:
    """The image's HEALTHCHECK command (exec form), which compose runs for service_healthy."""
    found = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])$", DOCKERFILE, flags=re.M | re.S)
    assert found, "no HEALTHCHECK CMD [...] in the Dockerfile"
    return json.loads(found.group(1))


def test_the_healthcheck_asks_the_port_the_gateway_listens_on(gateway, tmp_path):
    assert "PORT" in COMPOSE["services"]["gateway"]["environment"]
    program, *args = healthcheck()
    assert program == "python"
    env = {**os.environ, "PORT": str(gateway.port)}
    assert subprocess.run([sys.executable, *args], env=env, timeout=30).returncode == 0
    # On another port (nothing listening there) it fails: it does ask PORT, not 8000.
    env["PORT"] = str(free_port())
    assert subprocess.run([sys.executable, *args], env=env, capture_output=True,
                          timeout=30).returncode != 0


def compose_clients() -> list[list[str]]:
    """The compose clients here: docker compose (v2, what the docs run), docker-compose 1.x."""
    clients = []
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        clients.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        clients.append(["docker-compose"])
    return clients


def compose(client: list[str], project: Path, *args: str) -> subprocess.CompletedProcess:
    # Only what the project directory gives: no setting from this shell's environment.
    env = {name: value for name, value in os.environ.items()
           if not re.search(r"\$\{" + name + r"\b", COMPOSE_TEXT)}
    return subprocess.run([*client, *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def project(tmp_path) -> Path:
    """A directory with the compose file and what it mounts, as in a fresh checkout."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "docker-compose.yml", project)
    shutil.copy(ROOT / ".env.example", project)
    shutil.copytree(ROOT / "deploy", project / "deploy")
    return project


FILLED = {"FACEBOOK_APP_ID": "424242", "FACEBOOK_APP_SECRET": "app-secret",
          "FACEBOOK_WEBHOOK_SECRET": "verify-token", "SYSTEM_TOKEN": "a" * 64}


def filled_env(**values: str) -> str:
    """.env.example with these values given."""
    text = ENV_EXAMPLE
    for name, value in values.items():
        text = re.sub(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
    return text


@pytest.mark.skipif(not compose_clients(), reason="no docker compose client here")
@pytest.mark.parametrize("client", compose_clients(), ids=" ".join)
def test_without_a_env_file_compose_names_the_missing_secrets(client, project):
    out = compose(client, project, "config", "-q")
    assert out.returncode != 0
    assert "env file" not in out.stderr.lower(), out.stderr
    for secret in SECRETS:
        assert secret in out.stderr, out.stderr
    # One left empty: the message leads with it.
    (project / ".env").write_text(filled_env(**{**FILLED, "SYSTEM_TOKEN": ""}))
    out = compose(client, project, "config", "-q")
    assert out.returncode != 0 and "set SYSTEM_TOKEN in .env" in out.stderr, out.stderr


@pytest.mark.skipif(not compose_clients(), reason="no docker compose client here")
@pytest.mark.parametrize("client", compose_clients(), ids=" ".join)
def test_with_a_filled_env_file_compose_accepts_the_file(client, project):
    (project / ".env").write_text(filled_env(**FILLED))
    out = compose(client, project, "config")
    assert out.returncode == 0, out.stderr
    gateway = yaml.safe_load(out.stdout)["services"]["gateway"]
    assert {name: gateway["environment"][name] for name in FILLED} == FILLED
    assert gateway["environment"]["MONGODB_DATABASE"] == "messenger_gateway"
    # Two replicas, in the key this client reads.
    assert gateway.get("deploy", {}).get("replicas") == 2 or gateway.get("scale") == 2
    assert subprocess.run([sys.executable, "-c", "from gateway.config import Settings; Settings()"],
                          env={**os.environ, **{k: str(v) for k, v in gateway["environment"]
                                                .items()}},
                          capture_output=True).returncode == 0
