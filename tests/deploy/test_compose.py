"""docker-compose.yml against the Compose specification's JSON schema, and cross-checked with what the images and
the control plane actually read (settings, ports, service names, entrypoint variables). No Docker engine runs here."""

from __future__ import annotations

import copy
import json
import os
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from control_plane.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
ENTRYPOINT = ROOT / "docker" / "triton-entrypoint.sh"
PROMETHEUS = ROOT / "deploy" / "prometheus"
SECRETS = {"FACE_API_ADMIN_TOKEN": "admin-secret-for-test", "FACE_API_CACHE_ENCRYPTION_KEY": "cache-secret-for-test"}

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value, env: dict[str, str]):
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` over every string of a loaded file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name, op, arg = m.group("name", "op", "arg")
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        if op == ":?":
            raise MissingVariable(f"{name}: {arg}")
        return ""

    return _VAR.sub(sub, value)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the x-triton anchors and merge keys as compose does


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return interpolate(raw, SECRETS)


@pytest.fixture(scope="module")
def schema() -> dict:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


def _validator(schema):
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_is_valid_against_the_compose_specification(compose, schema):
    errors = sorted(_validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_misspelt_key(compose, schema):
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["healthchek"] = broken["services"]["redis"].pop("healthcheck")
    assert list(_validator(schema).iter_errors(broken))


def test_secrets_are_required_not_defaulted(raw):
    for name in SECRETS:
        env = {k: v for k, v in SECRETS.items() if k != name}
        with pytest.raises(MissingVariable, match=name):
            interpolate(raw, env)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _setting_names() -> set[str]:
    return {f"FACE_API_{name.upper()}" for name in Settings.model_fields}


def test_every_face_api_variable_is_a_real_setting(raw):
    names = set(re.findall(r"\bFACE_API_[A-Z0-9_]+", COMPOSE.read_text() + ENV_EXAMPLE.read_text()))
    # Host-side publishing knobs of the compose file, not settings of the API.
    publishing = {"FACE_API_BIND", "FACE_API_PUBLISHED_PORT"}
    unknown = names - publishing - _setting_names()
    assert not unknown, f"compose or .env.example names variables the control plane does not read: {unknown}"


def test_the_control_plane_environment_parses_as_settings(compose, monkeypatch):
    env = _environment(compose["services"]["control-plane"])
    for key in list(os.environ):
        if key.startswith("FACE_API_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.host == "0.0.0.0"
    assert settings.admin_token.get_secret_value() == SECRETS["FACE_API_ADMIN_TOKEN"]
    assert settings.cache_encryption_key is not None


def _aliases(name: str, service: dict) -> set[str]:
    names = {name}
    for net in (service.get("networks") or {}).values():
        names |= set((net or {}).get("aliases", []))
    return names


def _container_ports(service: dict) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}


def test_service_addresses_and_ports_line_up(compose):
    services = compose["services"]
    cp = _environment(services["control-plane"])
    triton_host, triton_port = cp["FACE_API_TRITON_URL"].rsplit(":", 1)
    redis_host = re.match(r"redis://([^:/]+)", cp["FACE_API_REDIS_URL"]).group(1)
    for profile in ("gpu", "cpu"):
        running = {n: s for n, s in services.items() if not s.get("profiles") or profile in s["profiles"]}
        reachable = set().union(*(_aliases(n, s) for n, s in running.items()))
        assert triton_host in reachable and redis_host in reachable, profile
        tritons = [s for n, s in running.items() if triton_host in _aliases(n, s)]
        assert len(tritons) == 1, f"profile {profile} must run exactly one Triton"
        assert int(triton_port) in _container_ports(tritons[0])  # gRPC, the port the entrypoint serves on
    assert int(cp["FACE_API_PORT"]) in _container_ports(services["control-plane"])
    assert f":{cp['FACE_API_PORT']}/health" in " ".join(services["control-plane"]["healthcheck"]["test"])


def test_triton_services_gpu_by_default_and_cpu_by_profile(compose):
    gpu, cpu = compose["services"]["triton"], compose["services"]["triton-cpu"]
    assert gpu["profiles"] == ["gpu"] and cpu["profiles"] == ["cpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "deploy" not in cpu
    assert _environment(gpu)["FACE_ANALYSIS_TARGET"] == "gpu"
    assert _environment(cpu)["FACE_ANALYSIS_TARGET"] == "cpu"
    assert "COMPOSE_PROFILES=gpu" in ENV_EXAMPLE.read_text().splitlines()
    for service in (gpu, cpu):
        size = service["shm_size"].lower()
        assert size.endswith("gb") and float(size[:-2]) >= 1, "Docker's 64 MB /dev/shm breaks the Python steps"
        assert any(v.endswith(":/var/cache/face-analysis/trt") for v in service["volumes"]), "engine cache volume"


def test_triton_variables_are_ones_the_entrypoint_reads(compose):
    script = ENTRYPOINT.read_text()
    for name in ("triton", "triton-cpu"):
        for key in _environment(compose["services"][name]):
            assert f"${{{key}" in script, f"{name} sets {key}, which docker/triton-entrypoint.sh never reads"


def test_startup_order_waits_for_health(compose):
    services = compose["services"]
    for dep, cond in services["control-plane"]["depends_on"].items():
        assert cond["condition"] == "service_healthy"
        assert "healthcheck" in services[dep], f"{dep} has no healthcheck to wait for"
        if dep.startswith("triton"):
            assert cond["required"] is False  # only one of the two Triton services runs
    assert "--appendonly" in services["redis"]["command"], "keys and usage counts must survive a Redis restart"


def test_builds_point_at_dockerfiles_that_exist(compose):
    for name, service in compose["services"].items():
        if "build" in service:
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file(), name


def test_env_example_carries_no_secret_values():
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith(tuple(SECRETS)):
            assert line.split("=", 1)[1] == "", f"{line!r}: the example must not ship a usable secret"


def test_prometheus_scrapes_the_services_on_their_metrics_ports(compose):
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    services = compose["services"]
    hosts = {}
    for name, service in services.items():
        for alias in _aliases(name, service):
            hosts[alias] = service
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    cp_port = _environment(services["control-plane"])["FACE_API_PORT"]
    assert jobs["control-plane"]["static_configs"][0]["targets"] == [f"control-plane:{cp_port}"]
    host, port = jobs["triton"]["static_configs"][0]["targets"][0].split(":")
    assert host in hosts and port == "8002"
    assert '--metrics-port="${TRITON_METRICS_PORT:-8002}"' in ENTRYPOINT.read_text()
    assert [(PROMETHEUS / Path(f).name).is_file() for f in config["rule_files"]] == [True]
    mounted = [v for v in services["prometheus"]["volumes"] if v.endswith(":/etc/prometheus:ro")]
    assert mounted and (ROOT / mounted[0].split(":")[0]).resolve() == PROMETHEUS


def test_alert_rules_are_well_formed():
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"FaceApiHighLatency", "FaceApiHighErrorRate", "FaceApiTritonDown", "FaceApiCircuitOpen"} <= names
    for rule in rules:
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
    by_name = {r["alert"]: r["expr"] for r in rules}
    assert by_name["FaceApiHighLatency"].rstrip().endswith("> 1")  # the seed's 1 s response-time threshold
    assert by_name["FaceApiHighErrorRate"].rstrip().endswith("> 0.05")  # 5 % errors
