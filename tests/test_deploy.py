"""The deployment files say what production needs: a replica set, two replicas, a balancer; the
compose clients accept them with a filled .env and name each missing secret without one."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
# Required: the gateway's (passed under their own names) and MongoDB's root user.
GATEWAY_SECRETS = ("FACEBOOK_APP_ID", "FACEBOOK_APP_SECRET", "FACEBOOK_WEBHOOK_SECRET",
                   "SYSTEM_TOKEN", "TOKEN_ENCRYPTION_KEY")
MONGO_SECRETS = {"MONGO_ROOT_USERNAME": "MONGO_INITDB_ROOT_USERNAME",
                 "MONGO_ROOT_PASSWORD": "MONGO_INITDB_ROOT_PASSWORD"}
SECRETS = (*GATEWAY_SECRETS, *MONGO_SECRETS)
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
NGINX = (ROOT / "deploy" / "nginx.conf").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()
LOCK = (ROOT / "deploy" / "requirements.lock").read_text()


def test_mongodb_runs_as_a_replica_set_that_initialises_itself():
    mongo = COMPOSE["services"]["mongo"]
    assert mongo["image"].startswith("mongo:")
    assert "--replSet" in mongo["command"]
    probe = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in probe and "isWritablePrimary" in probe
    assert any(v.endswith(":/data/db") for v in mongo["volumes"])
    assert "mongo-data" in COMPOSE["volumes"]


def test_mongodb_asks_for_a_password_and_its_members_for_the_key_file():
    mongo = COMPOSE["services"]["mongo"]
    # The key file: made before mongod starts (once: it is kept in a volume), then passed to it.
    key = mongo["command"][mongo["command"].index("--keyFile") + 1]
    script = mongo["entrypoint"][2]
    assert key.startswith("/data/configdb/") and "/data/configdb" in script
    assert any(v.endswith(":/data/configdb") for v in mongo["volumes"])
    assert "chmod 400" in script and "exec docker-entrypoint.sh" in script
    # The root user from .env: the healthcheck and the gateway log in as it.
    for ours, theirs in MONGO_SECRETS.items():
        assert mongo["environment"][theirs].startswith(f"${{{ours}:?")
        assert f"$${theirs}" in " ".join(mongo["healthcheck"]["test"])
    url = COMPOSE["services"]["gateway"]["environment"]["MONGODB_URL"]
    assert url.startswith("mongodb://${MONGO_ROOT_USERNAME}:${MONGO_ROOT_PASSWORD}@mongo:27017/")
    assert "authSource=admin" in url


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
    # nginx sends traffic to the port the gateway listens on, re-resolving the replicas' names.
    port = COMPOSE["services"]["gateway"]["environment"]["PORT"]
    assert f"server gateway:{port} resolve" in NGINX
    assert "resolver 127.0.0.11" in NGINX
    assert "proxy_set_header Upgrade $http_upgrade" in NGINX
    assert "proxy_set_header Connection $connection_upgrade" in NGINX
    # Long reads on websockets only; plain HTTP fails over after a short wait (tests/test_nginx.py
    # runs the file).
    websocket = re.search(r"location @websocket \{(.*?)\}", NGINX, flags=re.S)
    assert websocket and "proxy_read_timeout 75s" in websocket.group(1)
    others = [int(t) for t in re.findall(r"proxy_read_timeout (\d+)s;",
                                          NGINX.replace(websocket.group(0), ""))]
    assert others and max(others) <= 15


def test_the_body_limits_of_nginx_and_the_gateway_agree():
    from gateway.config import Settings

    def mib(size: str) -> int:
        assert size.endswith("m")
        return int(size[:-1]) * 1024 * 1024

    general = re.search(r"^    client_max_body_size (\w+);", NGINX, flags=re.M)
    webhook = re.search(r"location = /facebook \{[^}]*client_max_body_size (\w+);", NGINX)
    assert general and webhook
    assert mib(general.group(1)) == Settings().max_body_bytes
    assert mib(webhook.group(1)) == Settings().facebook_max_body_bytes
    # Uploads: the attachment and the multipart form around it (at most 1 MiB of it).
    for route in ("/media.upload", "/graphql"):
        upload = re.search(rf"location = {route} \{{[^}}]*client_max_body_size (\w+);", NGINX)
        assert upload, route
        assert 0 < mib(upload.group(1)) - Settings().attachment_max_bytes <= 1024 * 1024


def test_the_gateways_believe_forwarded_headers_from_the_proxy_alone():
    proxy_address = COMPOSE["services"]["proxy"]["networks"]["default"]["ipv4_address"]
    assert COMPOSE["services"]["gateway"]["environment"]["FORWARDED_ALLOW_IPS"] == proxy_address
    (pool,) = COMPOSE["networks"]["default"]["ipam"]["config"]
    address = ipaddress.ip_address(proxy_address)
    # In the network, but outside the range other containers get addresses from.
    assert address in ipaddress.ip_network(pool["subnet"])
    assert address not in ipaddress.ip_network(pool["ip_range"])
    assert "X-Forwarded-For $remote_addr;" in NGINX


def test_the_public_port_is_on_loopback_unless_published_on_purpose():
    (port,) = COMPOSE["services"]["proxy"]["ports"]
    assert port.startswith("${PUBLIC_BIND:-127.0.0.1}:")


def test_every_setting_comes_from_the_env_file_and_is_documented():
    documented = set(re.findall(r"^([A-Z_]+)=", ENV_EXAMPLE, flags=re.M))
    environment = {**COMPOSE["services"]["gateway"]["environment"],
                   **{ours: COMPOSE["services"]["mongo"]["environment"][theirs]
                      for ours, theirs in MONGO_SECRETS.items()}}
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
    assert re.search(r"^FROM python:3\.11\.\d+-slim-\w+$", DOCKERFILE, flags=re.M)
    user = re.search(r"^USER (\S+)", DOCKERFILE, flags=re.M)
    assert user and user.group(1) not in ("root", "0")


def test_images_are_pinned_to_exact_versions():
    services = COMPOSE["services"]
    assert re.fullmatch(r"mongo:\d+\.\d+\.\d+", services["mongo"]["image"])
    nginx = re.fullmatch(r"nginx:(\d+)\.(\d+)\.(\d+)-alpine", services["proxy"]["image"])
    # `resolve` on an upstream server needs nginx 1.27.3 or newer.
    assert nginx and tuple(map(int, nginx.groups())) >= (1, 27, 3)


def test_every_python_dependency_is_pinned_in_the_lock_file():
    from packaging.requirements import Requirement

    pinned = {}
    for line in LOCK.splitlines():
        if line and not line.startswith("#"):
            name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line).groups()
            pinned[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        wanted = Requirement(line)
        name = re.sub(r"[-_.]+", "-", wanted.name).lower()
        assert name in pinned, f"{wanted.name} is not in deploy/requirements.lock"
        assert wanted.specifier.contains(pinned[name]), (line, pinned[name])
    # The image installs the lock, then the package without resolving anything again.
    assert "pip install --no-cache-dir -r deploy/requirements.lock" in DOCKERFILE
    assert "pip install --no-cache-dir --no-deps . && pip check" in DOCKERFILE


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
          "FACEBOOK_WEBHOOK_SECRET": "verify-token", "SYSTEM_TOKEN": "a" * 64,
          "TOKEN_ENCRYPTION_KEY": "Ab3mWdWqCSVJUUlhkvUWE47-kvNm1NB3mL2fyE9q_Nc=",
          "MONGO_ROOT_USERNAME": "gateway", "MONGO_ROOT_PASSWORD": "f" * 48}


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
    config = yaml.safe_load(out.stdout)
    gateway = config["services"]["gateway"]
    assert {name: gateway["environment"][name] for name in GATEWAY_SECRETS} == {
        name: FILLED[name] for name in GATEWAY_SECRETS}
    assert gateway["environment"]["MONGODB_URL"].startswith(f"mongodb://gateway:{'f' * 48}@")
    assert published_on(config) == "127.0.0.1"
    assert gateway["environment"]["MONGODB_DATABASE"] == "messenger_gateway"
    # Two replicas, in the key this client reads.
    assert gateway.get("deploy", {}).get("replicas") == 2 or gateway.get("scale") == 2
    # The gateway starts with these settings (from_env reads them as the gateway does).
    check = subprocess.run([sys.executable, "-c",
                            "from gateway.config import Settings; Settings.from_env()"],
                           env={**os.environ, **{k: str(v) for k, v in gateway["environment"]
                                                 .items()}},
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def published_on(config: dict) -> str:
    """The host address the proxy's port is published on, in either client's way of writing it."""
    (port,) = config["services"]["proxy"]["ports"]
    if isinstance(port, dict):
        return port.get("host_ip", "0.0.0.0")
    return port.split(":")[0] if port.count(":") == 2 else "0.0.0.0"


@pytest.mark.skipif(not compose_clients(), reason="no docker compose client here")
@pytest.mark.parametrize("client", compose_clients(), ids=" ".join)
def test_the_operator_publishes_the_port_on_every_interface_on_purpose(client, project):
    (project / ".env").write_text(filled_env(**FILLED, PUBLIC_BIND="0.0.0.0"))
    out = compose(client, project, "config")
    assert out.returncode == 0, out.stderr
    assert published_on(yaml.safe_load(out.stdout)) == "0.0.0.0"
