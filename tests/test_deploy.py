"""The deployment files say what production needs: a replica set, two replicas, a balancer."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
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
    assert gateway["deploy"]["replicas"] == 2
    assert "replicaSet=rs0" in gateway["environment"]["MONGODB_URL"]
    assert gateway["depends_on"]["mongo"]["condition"] == "service_healthy"
    assert gateway["env_file"] == ".env"


def test_the_proxy_balances_http_and_websockets():
    proxy = COMPOSE["services"]["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in proxy["volumes"]
    assert "server gateway:8000" in NGINX
    assert "proxy_set_header Upgrade $http_upgrade" in NGINX
    assert "proxy_set_header Connection $connection_upgrade" in NGINX
    assert re.search(r"proxy_read_timeout\s+1h", NGINX)


def test_every_secret_comes_from_the_env_file_and_is_documented():
    documented = set(re.findall(r"^([A-Z_]+)=", ENV_EXAMPLE, flags=re.M))
    for secret in ("FACEBOOK_APP_ID", "FACEBOOK_APP_SECRET", "FACEBOOK_WEBHOOK_SECRET",
                   "SYSTEM_TOKEN"):
        assert secret in documented
        assert secret not in (ROOT / "docker-compose.yml").read_text()  # only via env_file
    for used in re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker-compose.yml").read_text()):
        assert used in documented, used
    # Each variable has a comment line above it saying what it is.
    lines = ENV_EXAMPLE.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z_]+=", line):
            assert lines[index - 1].startswith("#"), line


def test_the_image_is_slim_runs_unprivileged_and_checks_its_health():
    assert "FROM python:3.11-slim" in DOCKERFILE
    user = re.search(r"^USER (\S+)", DOCKERFILE, flags=re.M)
    assert user and user.group(1) not in ("root", "0")
    assert "HEALTHCHECK" in DOCKERFILE and "/health" in DOCKERFILE
    assert "npm run build" in DOCKERFILE and "INBOX_DIR=/app/inbox" in DOCKERFILE


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(_compose_command() is None, reason="no docker compose client here")
def test_docker_compose_accepts_the_file(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "data", "test-output"))
    shutil.copy(project / ".env.example", project / ".env")
    out = subprocess.run([*_compose_command(), "config", "-q"], cwd=project,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
