"""The Helm chart in helm/face-analysis: lint, render every value set, validate the manifests against the Kubernetes
schemas, and check what matters (GPU vs CPU, secrets, probes, network policies, ingress, alerts, the test hook)."""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import CHART, KUBE_VERSION, NAMESPACE, ROOT, VALUE_SETS, run_helm

FULL = "fa-face-analysis"
TRITON = f"{FULL}-triton"
CONTROL_PLANE = f"{FULL}-control-plane"
REDIS = f"{FULL}-redis"
SECRET_KEYS = {
    "FACE_API_ADMIN_TOKEN": "admin-token",
    "FACE_API_CACHE_ENCRYPTION_KEY": "cache-encryption-key",
    "FACE_API_REDIS_URL": "redis-url",
}
ALERTS = {"FaceApiHighLatency", "FaceApiHighErrorRate", "FaceApiHighMemory", "FaceApiTritonDown", "FaceApiCircuitOpen"}
INGRESS_PATHS = {"/v1", "/health", "/docs", "/openapi.json"}
ENTRYPOINT = ROOT / "docker" / "triton-entrypoint.sh"


def container(deployment: dict, name: str) -> dict:
    spec = deployment["spec"]["template"]["spec"]
    found = [c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name]
    assert len(found) == 1, f"container {name} in {deployment['metadata']['name']}"
    return found[0]


def triton_container(r) -> dict:
    return container(r.get("Deployment", TRITON), "triton")


def control_plane_container(r) -> dict:
    return container(r.get("Deployment", CONTROL_PLANE), "control-plane")


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- lint, render, schema validation -------------------------------------------------------------------------------


def test_helm_binary_is_helm(helm):
    proc = run_helm(helm, "version", "--short")
    assert proc.returncode == 0 and proc.stdout.startswith("v"), proc.stdout + proc.stderr


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_lint_strict(helm, value_set):
    args = ["lint", "--strict", "--namespace", NAMESPACE, str(CHART)]
    for f in VALUE_SETS[value_set]:
        args += ["-f", str(f)]
    proc = run_helm(helm, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_manifests_are_valid_kubernetes(rendered_sets, value_set):
    r = rendered_sets[value_set]
    native = [d for d in r.docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert len(native) >= 10
    for doc in native:
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
        assert doc["metadata"]["namespace"] == NAMESPACE, f"{doc['kind']} {doc['metadata']['name']}"
        assert len(doc["metadata"]["name"]) <= 63


def test_validator_is_strict():
    """The validation above would catch an unknown field (a typo in a template)."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i", "livenessProbe": {"httpGet": {"port": 1}}}]},
            },
        },
    }
    kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)
    bad = copy.deepcopy(deployment)
    bad["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBE_VERSION, strict=True)


def test_schema_rejects_unknown_top_level_key(render_fails):
    err = render_fails(sets=["controlplane.replicas=3"])
    assert "controlplane" in err and "additional properties" in err


def test_schema_rejects_unknown_key_in_a_section(render_fails):
    err = render_fails(sets=["triton.replcias=3"])
    assert "replcias" in err
    err = render_fails(sets=["controlPlane.autoscaling.minReplica=1"])
    assert "minReplica" in err


def test_schema_rejects_wrong_types(render_fails):
    assert "replicas" in render_fails(set_strings=["triton.replicas=two"])
    assert "target" in render_fails(sets=["triton.target=tpu"])
    assert "enabled" in render_fails(set_strings=["networkPolicy.enabled=yes"])
    rules = "monitoring.prometheusRule.rules"
    assert "thresholdSeconds" in render_fails(set_strings=[f"{rules}.highLatency.thresholdSeconds=1s"])
    assert "threshold" in render_fails(sets=[f"{rules}.highErrorRate.threshold=1.5"])
    assert "maxFaces" in render_fails(set_jsons=["triton.models.maxFaces=0"])


def test_redis_is_required(render_fails):
    err = render_fails(sets=["redis.enabled=false"])
    assert "redis.external" in err


# --- Triton: GPU / CPU, probes, volumes -----------------------------------------------------------------------------


def env_of(c: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


def run_entrypoint(c: dict, tmp_path: Path, gpu_name: str | None = None) -> list[str]:
    """Run the Triton image's entrypoint (docker/triton-entrypoint.sh) with a container's rendered args and
    environment, `tritonserver`, `face-analysis` and `nvidia-smi` stubbed: the commands it would run."""
    assert ENTRYPOINT.is_file(), f"{ENTRYPOINT} is missing: the chart drives the Triton image through it"
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    log = tmp_path / "commands.log"
    log.unlink(missing_ok=True)
    for name in ("tritonserver", "face-analysis"):
        (stubs / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "$STUB_LOG"\n')
    gpu = f'echo "{gpu_name}, 8.9"' if gpu_name else "exit 9"
    (stubs / "nvidia-smi").write_text(f"#!/bin/sh\n{gpu}\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "STUB_LOG": str(log), "TRT_VERSION": "10.5.0"}
    env.update(env_of(c))
    env["ENGINE_CACHE_ROOT"] = str(tmp_path / "trt")  # a writable stand-in for the volume
    proc = subprocess.run(["bash", str(ENTRYPOINT), *c["args"]], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return log.read_text().splitlines() if log.exists() else []


def flag(command: str, name: str) -> str:
    words = command.split()
    return words[words.index(name) + 1]


def test_gpu_target_by_default(rendered_sets):
    r = rendered_sets["default"]
    dep = r.get("Deployment", TRITON)
    t, init = triton_container(r), container(dep, "repo-build")
    assert t["resources"]["limits"]["nvidia.com/gpu"] == 1
    # the init container sees the same GPU (to key the engine cache); Kubernetes reuses its device, so the pod
    # still asks for one GPU
    assert init["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert env_of(t)["FACE_ANALYSIS_TARGET"] == env_of(init)["FACE_ANALYSIS_TARGET"] == "gpu"
    assert env_of(init)["FACE_ANALYSIS_PACK"] == "buffalo_l"
    tolerations = dep["spec"]["template"]["spec"]["tolerations"]
    assert any(tol["key"] == "nvidia.com/gpu" for tol in tolerations)


def test_cpu_target_has_no_gpu(rendered_sets):
    r = rendered_sets["cpu"]
    dep = r.get("Deployment", TRITON)
    pod = dep["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in json.dumps(pod["containers"] + pod["initContainers"])
    assert "tolerations" not in pod
    init = container(dep, "repo-build")
    assert env_of(init)["FACE_ANALYSIS_TARGET"] == env_of(triton_container(r))["FACE_ANALYSIS_TARGET"] == "cpu"
    assert env_of(init)["FACE_ANALYSIS_PACK"] in {"test", "buffalo_s"}
    assert env_of(init)["FACE_ANALYSIS_CPU_THREADS"] == "2"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_tritonserver_command_line(rendered_sets, value_set, tmp_path):
    """What the Triton container runs: tritonserver on the built repository, --model-config-name=cpu only on cpu."""
    r = rendered_sets[value_set]
    t = triton_container(r)
    assert t["args"][0] == "serve"
    commands = run_entrypoint(t, tmp_path, gpu_name="NVIDIA L4")
    assert len(commands) == 1 and commands[0].startswith("tritonserver "), commands  # no build: the init did it
    args = commands[0].split()
    init = container(r.get("Deployment", TRITON), "repo-build")
    assert f"--model-repository={env_of(init)['FACE_ANALYSIS_REPOSITORY']}" in args
    assert {"--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"} <= set(args)
    assert ("--model-config-name=cpu" in args) == (value_set == "cpu")


@pytest.mark.parametrize("value_set", ["default", "cpu"])
def test_repository_build_command_line(rendered_sets, value_set, tmp_path):
    """What the init container runs: `face-analysis repo build` from the values, into the mounted volumes."""
    r = rendered_sets[value_set]
    dep = r.get("Deployment", TRITON)
    init = container(dep, "repo-build")
    assert init["args"] == ["build"]
    commands = run_entrypoint(init, tmp_path, gpu_name="NVIDIA L4" if value_set == "default" else None)
    assert len(commands) == 1 and commands[0].startswith("face-analysis repo build "), commands
    build = commands[0]
    env = env_of(init)
    assert flag(build, "--pack") == env["FACE_ANALYSIS_PACK"]
    assert flag(build, "--out") == env["FACE_ANALYSIS_REPOSITORY"]
    assert flag(build, "--models-dir") == "/models/packs"
    assert flag(build, "--max-faces") == env["FACE_ANALYSIS_MAX_FACES"]
    assert flag(build, "--cpu-threads") == env["FACE_ANALYSIS_CPU_THREADS"]
    if value_set == "default":
        cache = Path(flag(build, "--engine-cache-dir"))
        # under the cache volume, one folder per GPU model and TensorRT version
        assert cache.parent == tmp_path / "trt" and "L4" in cache.name and cache.is_dir()
        assert env["ENGINE_CACHE_ROOT"] == "/var/cache/face-analysis/trt"
    else:
        assert "--engine-cache-dir" not in build

    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    # the build replaces its output folder, so it must be inside the mount, not the mount itself
    assert env["FACE_ANALYSIS_REPOSITORY"].startswith(mounts["repository"] + "/")
    assert mounts["packs"] == "/models/packs" and mounts["engine-cache"] == env["ENGINE_CACHE_ROOT"]
    t_mounts = {m["name"]: m["mountPath"] for m in triton_container(r)["volumeMounts"]}
    assert t_mounts["repository"] == mounts["repository"] and t_mounts["engine-cache"] == env["ENGINE_CACHE_ROOT"]


def test_cpu_target_drops_a_gpu_resource_set_by_hand(render):
    r = render(sets=["triton.target=cpu", "triton.resources.limits.nvidia\\.com/gpu=2"])
    assert "nvidia.com/gpu" not in triton_container(r)["resources"].get("limits", {})


def test_triton_probes(rendered_sets):
    t = triton_container(rendered_sets["default"])
    ports = {p["name"]: p["containerPort"] for p in t["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert t["startupProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert t["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert t["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    startup = t["startupProbe"]
    # TensorRT engine builds at first load take minutes
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_triton_volumes(rendered_sets):
    dep = rendered_sets["default"].get("Deployment", TRITON)
    init, t = container(dep, "repo-build"), triton_container(rendered_sets["default"])
    assert init["image"] == t["image"] == "ghcr.io/face-analysis/triton:0.1.0"
    assert env_of(t)["FACE_ANALYSIS_PREBUILT"] == "1"
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in t["volumeMounts"]}
    assert "emptyDir" in volumes["repository"] and "emptyDir" in volumes["packs"]
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"} and mounts["dshm"] == "/dev/shm"
    assert mounts["engine-cache"] == "/var/cache/face-analysis/trt" and "emptyDir" in volumes["engine-cache"]


def test_triton_persistent_volumes(rendered_sets):
    r = rendered_sets["direct-grpc"]
    volumes = {v["name"]: v for v in r.get("Deployment", TRITON)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["engine-cache"]["persistentVolumeClaim"]["claimName"] == f"{TRITON}-engines"
    assert volumes["packs"]["persistentVolumeClaim"]["claimName"] == f"{TRITON}-packs"
    assert r.get("PersistentVolumeClaim", f"{TRITON}-engines")["spec"]["accessModes"] == ["ReadWriteMany"]
    r.get("PersistentVolumeClaim", f"{TRITON}-packs")
    assert not rendered_sets["default"].of_kind("PersistentVolumeClaim")


def test_existing_repository_skips_the_build(render, tmp_path):
    r = render(sets=["triton.models.existingRepositoryClaim=face-repo", "triton.engineCache.persistence.enabled=true"])
    spec = r.get("Deployment", TRITON)["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["repository"]["persistentVolumeClaim"] == {"claimName": "face-repo", "readOnly": True}
    assert "packs" not in volumes
    t = triton_container(r)
    assert {m["name"]: m["mountPath"] for m in t["volumeMounts"]}["repository"] == "/models/repository"
    commands = run_entrypoint(t, tmp_path)
    assert len(commands) == 1 and "--model-repository=/models/repository" in commands[0].split(), commands
    assert [p["metadata"]["name"] for p in r.of_kind("PersistentVolumeClaim")] == [f"{TRITON}-engines"]


def test_triton_pdb_and_hpa(rendered_sets, render):
    assert rendered_sets["default"].maybe("PodDisruptionBudget", TRITON) is None  # one replica
    assert rendered_sets["default"].maybe("HorizontalPodAutoscaler", TRITON) is None  # off by default
    pdb = rendered_sets["direct-grpc"].get("PodDisruptionBudget", TRITON)
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "triton"
    for kind in ("Pods", "External"):
        r = render(sets=["triton.autoscaling.enabled=true", f"triton.autoscaling.metric.type={kind}"])
        hpa = r.get("HorizontalPodAutoscaler", TRITON)
        kubernetes_validate.validate(hpa, KUBE_VERSION, strict=True)
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == kind
        assert metric[kind.lower()]["metric"]["name"] == "nv_inference_queue_duration_us_per_request"
        assert metric[kind.lower()]["target"] == {"type": "AverageValue", "averageValue": "50000"}
        assert "replicas" not in r.get("Deployment", TRITON)["spec"]


# --- Services ------------------------------------------------------------------------------------------------------


def test_triton_cluster_service(rendered_sets):
    svc = rendered_sets["default"].get("Service", TRITON)
    assert svc["spec"]["type"] == "ClusterIP"
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    labels = rendered_sets["default"].get("Deployment", TRITON)["spec"]["template"]["metadata"]["labels"]
    assert selects(svc["spec"]["selector"], labels)
    assert rendered_sets["default"].maybe("Service", f"{TRITON}-grpc") is None


def test_direct_grpc_load_balancer(rendered_sets):
    r = rendered_sets["direct-grpc"]
    svc = r.get("Service", f"{TRITON}-grpc")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(8001, "grpc")]
    assert svc["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    assert svc["spec"]["loadBalancerSourceRanges"] == ["10.20.0.0/16"]
    labels = r.get("Deployment", TRITON)["spec"]["template"]["metadata"]["labels"]
    assert selects(svc["spec"]["selector"], labels)


def test_direct_grpc_node_port(render):
    expose = "triton.grpc.expose"
    r = render(sets=[f"{expose}.enabled=true", f"{expose}.type=NodePort", f"{expose}.nodePort=30801"])
    svc = r.get("Service", f"{TRITON}-grpc")
    assert svc["spec"]["type"] == "NodePort" and svc["spec"]["ports"][0]["nodePort"] == 30801
    assert "loadBalancerSourceRanges" not in svc["spec"]


# --- Control plane: settings, secrets, probes, security, autoscaling -------------------------------------------------


def test_control_plane_points_at_triton(rendered_sets):
    r = rendered_sets["default"]
    data = r.get("ConfigMap", CONTROL_PLANE)["data"]
    # dns:///<headless service>.<namespace>.svc:<port>: every pod's address, for the client's round robin
    scheme, _, target = data["FACE_API_TRITON_URL"].partition(":///")
    host, port = target.split(":")
    name, namespace, svc_suffix = host.split(".")
    assert scheme == "dns" and svc_suffix == "svc" and namespace == NAMESPACE
    svc = r.get("Service", name)
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == r.get("Service", TRITON)["spec"]["selector"]
    assert int(port) in [p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc"]
    assert data["FACE_API_HOST"] == "0.0.0.0" and data["FACE_API_PORT"] == "8080"
    c = control_plane_container(r)
    assert c["envFrom"] == [{"configMapRef": {"name": CONTROL_PLANE}}]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_settings_render_as_the_app_reads_them(render, monkeypatch):
    from control_plane.core.settings import Settings

    r = render(
        sets=["controlPlane.settings.max_body_bytes=20971520", "controlPlane.settings.FACE_API_AUTH_REQUIRED=false"],
        set_strings=["controlPlane.settings.REDIS_PREFIX=fa:prod:"],
        set_jsons=[
            'controlPlane.settings.RATE_TIERS={"free": {"burst": 3, "per_minute": 30}}',
            'controlPlane.settings.CORS_ORIGINS=["https://app.example.com"]',
            "controlPlane.settings.TRITON_RETRY_BACKOFF_S=0.025",
        ],
    )
    data = r.get("ConfigMap", CONTROL_PLANE)["data"]
    assert all(isinstance(v, str) for v in data.values())
    assert data["FACE_API_MAX_BODY_BYTES"] == "20971520"  # not 2.097152e+07
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert s.max_body_bytes == 20971520
    assert s.auth_required is False
    assert s.redis_prefix == "fa:prod:"
    assert s.rate_tiers["free"].burst == 3 and s.rate_tiers["free"].per_minute == 30
    assert s.cors_origins == ["https://app.example.com"]
    assert s.triton_retry_backoff_s == 0.025
    assert s.triton_url == f"dns:///{TRITON}-headless.{NAMESPACE}.svc:8001" and s.log_level == "INFO" and s.port == 8080


@pytest.mark.parametrize("key", ["ADMIN_TOKEN", "cache_encryption_key", "FACE_API_REDIS_URL"])
def test_settings_refuse_secrets(render_fails, key):
    err = render_fails(set_strings=[f"controlPlane.settings.{key}=leak"])
    assert "secret" in err.lower()


def test_secrets_come_from_the_secret_only(render):
    admin, cache_key, redis_password = "AdminTok3nValue0123", "CacheKeyValue4567", "RedisPassValue89"
    r = render(
        set_strings=[
            f"controlPlane.secret.adminToken={admin}",
            f"controlPlane.secret.cacheEncryptionKey={cache_key}",
            f"redis.password={redis_password}",
        ]
    )
    env = {e["name"]: e for e in control_plane_container(r)["env"]}
    for name, key in SECRET_KEYS.items():
        assert "value" not in env[name], name
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": FULL, "key": key}
    secret = {k: base64.b64decode(v).decode() for k, v in r.get("Secret", FULL)["data"].items()}
    assert secret["admin-token"] == admin and secret["cache-encryption-key"] == cache_key
    assert secret["redis-url"] == f"redis://:{redis_password}@{REDIS}:6379/0"
    configmaps = r.of_kind("ConfigMap")
    assert configmaps
    for cm in configmaps:
        text = json.dumps(cm)
        for value in (admin, cache_key, redis_password):
            assert value not in text, f"ConfigMap {cm['metadata']['name']} carries a secret"
    # and nothing but the Secret carries them
    for doc in r.docs:
        if doc["kind"] != "Secret":
            assert admin not in json.dumps(doc) and redis_password not in json.dumps(doc), doc["kind"]


def test_external_redis_url_stays_in_the_secret(render):
    url = "rediss://:ExtRedisPw123@redis.example.com:6380/2"
    r = render(sets=["redis.enabled=false", f"redis.external.url={url}"])
    assert base64.b64decode(r.get("Secret", FULL)["data"]["redis-url"]).decode() == url
    for cm in r.of_kind("ConfigMap"):
        assert "ExtRedisPw123" not in json.dumps(cm)
    env = {e["name"]: e for e in control_plane_container(r)["env"]}
    assert env["FACE_API_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": FULL, "key": "redis-url"}


def test_generated_secrets(rendered_sets):
    secret = rendered_sets["default"].get("Secret", FULL)
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(values) == {"admin-token", "cache-encryption-key", "redis-password", "redis-url"}
    assert len(values["admin-token"]) >= 32 and len(values["cache-encryption-key"]) >= 32
    assert values["redis-url"] == f"redis://:{values['redis-password']}@{REDIS}:6379/0"


def test_external_redis_set(rendered_sets):
    r = rendered_sets["external-redis"]
    assert not r.of_kind("StatefulSet")
    assert not [s for s in r.of_kind("Service") if s["metadata"]["name"].startswith(REDIS)]
    assert not [n for n in r.of_kind("NetworkPolicy") if n["metadata"]["name"] == REDIS]
    assert not r.of_kind("Secret")  # everything comes from existing Secrets
    env = {e["name"]: e for e in control_plane_container(r)["env"]}
    assert env["FACE_API_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "face-redis", "key": "url"}
    admin_ref = env["FACE_API_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert admin_ref == {"name": "face-api-secrets", "key": "admin-token"}
    data = r.get("ConfigMap", CONTROL_PLANE)["data"]
    assert data["FACE_API_REDIS_PREFIX"] == "fa:prod:" and data["FACE_API_REDIS_TIMEOUT_S"] == "0.5"


def test_bundled_redis(rendered_sets):
    r = rendered_sets["default"]
    sts = r.get("StatefulSet", REDIS)
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "redis:7-alpine"
    assert c["command"][:2] == ["sh", "-c"]
    script = c["command"][2]
    assert "--appendonly yes" in script and "requirepass" in script
    syntax = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    assert "REDIS_PASSWORD" not in json.dumps(c.get("args", []))  # the password is not on the command line
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    assert env["REDIS_PASSWORD"] == {"name": FULL, "key": "redis-password"}
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert r.get("Service", f"{REDIS}-headless")["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == f"{REDIS}-headless"
    r.get("Service", REDIS)


def test_control_plane_probes_and_security(rendered_sets):
    dep = rendered_sets["default"].get("Deployment", CONTROL_PLANE)
    c = control_plane_container(rendered_sets["default"])
    assert c["image"] == "ghcr.io/face-analysis/control-plane:0.1.0"
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert sc["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp"}
    assert c["resources"]["limits"]["memory"]  # FaceApiHighMemory divides by it
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_control_plane_hpa_and_pdb(rendered_sets, render):
    r = rendered_sets["default"]
    hpa = r.get("HorizontalPodAutoscaler", CONTROL_PLANE)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": CONTROL_PLANE}
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    assert "replicas" not in r.get("Deployment", CONTROL_PLANE)["spec"]  # the HPA owns it
    assert r.get("PodDisruptionBudget", CONTROL_PLANE)["spec"]["minAvailable"] == 1

    latency = render(sets=["controlPlane.autoscaling.metric=latency"]).get("HorizontalPodAutoscaler", CONTROL_PLANE)
    assert latency["spec"]["metrics"][0]["type"] == "Pods"
    assert latency["spec"]["metrics"][0]["pods"]["metric"]["name"] == "face_api_request_duration_seconds_p95"
    queue = render(sets=["controlPlane.autoscaling.metric=tritonQueue"]).get("HorizontalPodAutoscaler", CONTROL_PLANE)
    assert queue["spec"]["metrics"][0]["type"] == "External"
    for hpa in (latency, queue):
        kubernetes_validate.validate(hpa, KUBE_VERSION, strict=True)

    fixed = render(sets=["controlPlane.autoscaling.enabled=false", "controlPlane.replicas=1"])
    assert fixed.maybe("HorizontalPodAutoscaler", CONTROL_PLANE) is None
    assert fixed.get("Deployment", CONTROL_PLANE)["spec"]["replicas"] == 1
    assert fixed.maybe("PodDisruptionBudget", CONTROL_PLANE) is None  # would block node drains with one replica


def test_settings_change_rolls_the_pods(render):
    def checksum(*sets):
        dep = render(sets=list(sets)).get("Deployment", CONTROL_PLANE)
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = checksum()
    assert len(base) == 64
    assert checksum() == base
    assert checksum("controlPlane.settings.LOG_LEVEL=DEBUG") != base
    assert checksum("controlPlane.settings.MAX_BATCH_IMAGES=8") != base


def test_secret_checksum_follows_the_secret(render):
    def checksum(token):
        # every generated value pinned, so that only the token can differ
        pinned = ["controlPlane.secret.cacheEncryptionKey=k", "redis.password=p"]
        r = render(set_strings=[f"controlPlane.secret.adminToken={token}", *pinned])
        return r.get("Deployment", CONTROL_PLANE)["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]

    assert checksum("a") == checksum("a")
    assert checksum("a") != checksum("b")


# --- NetworkPolicy ---------------------------------------------------------------------------------------------------


def rules_by_port(policy: dict) -> dict[int, list[list[dict] | None]]:
    """port -> the `from` lists of the rules opening it (None: from anywhere)."""
    out: dict[int, list] = {}
    for rule in policy["spec"]["ingress"]:
        for p in rule["ports"]:
            out.setdefault(p["port"], []).append(rule.get("from"))
    return out


def component_peer(component: str) -> dict:
    return {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "face-analysis",
                "app.kubernetes.io/instance": "fa",
                "app.kubernetes.io/component": component,
            }
        }
    }


def test_network_policies_default(rendered_sets):
    r = rendered_sets["default"]
    cp_peer, test_peer = component_peer("control-plane"), component_peer("test")

    triton = r.get("NetworkPolicy", TRITON)
    labels = r.get("Deployment", TRITON)["spec"]["template"]["metadata"]["labels"]
    assert selects(triton["spec"]["podSelector"]["matchLabels"], labels)
    assert triton["spec"]["policyTypes"] == ["Ingress"]
    ports = rules_by_port(triton)
    assert set(ports) == {8000, 8001, 8002}
    assert ports[8000] == [[cp_peer, test_peer]]  # HTTP: the control plane and the helm test pod only
    assert ports[8001] == [[cp_peer, test_peer]]  # gRPC not exposed by default
    (metrics_from,) = ports[8002]
    assert metrics_from == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]

    redis = r.get("NetworkPolicy", REDIS)
    assert rules_by_port(redis) == {6379: [[cp_peer]]}
    redis_labels = r.get("StatefulSet", REDIS)["spec"]["template"]["metadata"]["labels"]
    assert selects(redis["spec"]["podSelector"]["matchLabels"], redis_labels)

    cp = r.get("NetworkPolicy", CONTROL_PLANE)
    assert rules_by_port(cp) == {8080: [None]}  # from anywhere by default

    # the peers match the pods they name
    cp_labels = r.get("Deployment", CONTROL_PLANE)["spec"]["template"]["metadata"]["labels"]
    assert selects(cp_peer["podSelector"]["matchLabels"], cp_labels)
    test_labels = r.get("Pod", f"{FULL}-test")["metadata"]["labels"]
    assert selects(test_peer["podSelector"]["matchLabels"], test_labels)
    assert not selects(cp_peer["podSelector"]["matchLabels"], test_labels)


def test_network_policy_direct_grpc(rendered_sets):
    ports = rules_by_port(rendered_sets["direct-grpc"].get("NetworkPolicy", TRITON))
    assert ports[8000] == [[component_peer("control-plane"), component_peer("test")]]
    assert len(ports[8001]) == 2
    assert ports[8001][1] == [
        {"ipBlock": {"cidr": "10.20.0.0/16"}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "batch-jobs"}}},
    ]


def test_network_policy_restricted_control_plane(render):
    r = render(set_jsons=['networkPolicy.controlPlane.from=[{"namespaceSelector": {"matchLabels": {"team": "web"}}}]'])
    (peers,) = rules_by_port(r.get("NetworkPolicy", CONTROL_PLANE))[8080]
    assert peers[0] == {"namespaceSelector": {"matchLabels": {"team": "web"}}}
    assert component_peer("test") in peers
    assert any(
        "namespaceSelector" in p
        and p["namespaceSelector"]["matchLabels"].get("kubernetes.io/metadata.name") == "monitoring"
        for p in peers
    )


def test_network_policy_can_be_disabled(render):
    assert not render(sets=["networkPolicy.enabled=false"]).of_kind("NetworkPolicy")


# --- Ingress ---------------------------------------------------------------------------------------------------------


def test_ingress_routes_only_the_public_api(rendered_sets):
    assert not rendered_sets["default"].of_kind("Ingress")
    ing = rendered_sets["direct-grpc"].get("Ingress", CONTROL_PLANE)
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [{"secretName": "face-example-tls", "hosts": ["face.example.com"]}]
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "face.example.com"
    paths = rule["http"]["paths"]
    assert {p["path"] for p in paths} == INGRESS_PATHS
    for p in paths:
        assert p["pathType"] == "Prefix"
        # a Prefix path covering /metrics (/, /m...) would expose the unauthenticated metrics
        assert not "/metrics".startswith(p["path"].rstrip("/") + "/") and p["path"] != "/"
        assert p["backend"]["service"] == {"name": CONTROL_PLANE, "port": {"number": 8080}}


# --- Monitoring ------------------------------------------------------------------------------------------------------


def test_monitoring_off_by_default(rendered_sets):
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert not rendered_sets["default"].of_kind(kind)


def test_service_monitors(rendered_sets):
    r = rendered_sets["direct-grpc"]
    monitors = {m["metadata"]["name"]: m for m in r.of_kind("ServiceMonitor")}
    assert set(monitors) == {CONTROL_PLANE, TRITON}
    for name, m in monitors.items():
        assert m["apiVersion"] == "monitoring.coreos.com/v1"
        assert m["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert m["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        (endpoint,) = m["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        # the Services it selects, and the port it scrapes on them
        selected = [
            s
            for s in r.of_kind("Service")
            if selects(m["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
            and "face-analysis/exposure" not in s["metadata"]["labels"]
        ]
        assert [s["metadata"]["name"] for s in selected] == [name]
        port = [p for p in selected[0]["spec"]["ports"] if p["name"] == endpoint["port"]]
        assert port, f"{name} scrapes a port its Service lacks"
        expected = 8002 if name == TRITON else 8080
        assert port[0]["port"] == expected


def test_prometheus_rule(rendered_sets, render):
    r = rendered_sets["direct-grpc"]
    (rule,) = r.of_kind("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = {a["alert"]: a for g in rule["spec"]["groups"] for a in g["rules"]}
    assert set(alerts) == ALERTS
    cp_sel = f'job="{CONTROL_PLANE}",namespace="{NAMESPACE}"'
    assert alerts["FaceApiHighLatency"]["expr"] == (
        f"histogram_quantile(0.95, sum by (le) (rate(face_api_request_duration_seconds_bucket{{{cp_sel}}}[5m]))) > 0.75"
    )
    err = alerts["FaceApiHighErrorRate"]["expr"]
    assert 'status=~"5.."' in err and err.endswith("> 0.02") and "face_api_request_duration_seconds_count" in err
    mem = alerts["FaceApiHighMemory"]["expr"]
    assert "container_memory_working_set_bytes" in mem and "kube_pod_container_resource_limits" in mem
    assert 'resource="memory"' in mem and mem.endswith("> 0.85")
    assert alerts["FaceApiTritonDown"]["expr"] == f'up{{job="{TRITON}",namespace="{NAMESPACE}"}} == 0'
    assert "face_api_circuit_breaker_state" in alerts["FaceApiCircuitOpen"]["expr"]
    assert alerts["FaceApiCircuitOpen"]["expr"].endswith("== 2")  # 2 = open
    for a in alerts.values():
        assert a["labels"]["severity"] in {"warning", "critical"} and a["for"]
        assert a["annotations"]["summary"]
    # the job labels name Services the ServiceMonitors scrape
    r.get("Service", CONTROL_PLANE)
    r.get("Service", TRITON)

    # thresholds and switches are values
    other = render(
        sets=[
            "monitoring.prometheusRule.enabled=true",
            "monitoring.prometheusRule.rules.highLatency.thresholdSeconds=2.5",
            "monitoring.prometheusRule.rules.highMemory.threshold=0.9",
            "monitoring.prometheusRule.rules.circuitOpen.enabled=false",
        ]
    )
    (rule,) = other.of_kind("PrometheusRule")
    alerts = {a["alert"]: a for g in rule["spec"]["groups"] for a in g["rules"]}
    assert set(alerts) == ALERTS - {"FaceApiCircuitOpen"}
    assert alerts["FaceApiHighLatency"]["expr"].endswith("> 2.5")
    assert alerts["FaceApiHighMemory"]["expr"].endswith("> 0.9")
    assert alerts["FaceApiHighErrorRate"]["expr"].endswith("> 0.05")


# --- helm test hook --------------------------------------------------------------------------------------------------


def test_helm_test_hook(rendered_sets):
    r = rendered_sets["default"]
    pod = r.get("Pod", f"{FULL}-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    (c,) = spec["containers"]
    assert c["image"] == control_plane_container(r)["image"]
    assert c["command"][:2] == ["python", "-c"]
    script = c["command"][2]
    compile(script, "helm-test", "exec")  # valid Python
    assert "from face_analysis.client import FaceAnalysisClient" in script
    assert '"/health/ready"' in script and "status == 200" in script
    assert "cv2.imencode" in script and ".analyze(" in script and "len(result) == 0" in script
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["CONTROL_PLANE_URL"] == f"http://{CONTROL_PLANE}:8080"
    assert env["TRITON_GRPC_URL"] == f"{TRITON}:8001"
    assert env["TRITON_HTTP_URL"] == f"http://{TRITON}:8000"
    # the URLs name rendered Services and their ports
    assert 8080 in [p["port"] for p in r.get("Service", CONTROL_PLANE)["spec"]["ports"]]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_notes_render(helm):
    proc = run_helm(helm, "install", "fa", str(CHART), "--dry-run=client", "-n", NAMESPACE)
    assert proc.returncode == 0, proc.stderr
    assert "kubectl -n face get secret fa-face-analysis -o jsonpath='{.data.admin-token}' | base64 -d" in proc.stdout
    assert "helm test fa -n face" in proc.stdout


def test_settings_may_point_at_another_triton_but_not_move_the_port(render, render_fails):
    r = render(sets=["controlPlane.settings.triton_url=gpu-pool.example:8001"])
    assert r.get("ConfigMap", CONTROL_PLANE)["data"]["FACE_API_TRITON_URL"] == "gpu-pool.example:8001"
    assert "set by the chart" in render_fails(sets=["controlPlane.settings.PORT=9000"])


def test_alerts_agree_with_compose(render):
    """The Compose Prometheus (deploy/prometheus/alerts.yml) and the chart alert under the same names, on the same
    metrics, with the same thresholds, durations and severities."""
    path = ROOT / "deploy" / "prometheus" / "alerts.yml"
    assert path.is_file(), f"{path} is missing"
    compose = {a["alert"]: a for g in yaml.safe_load(path.read_text())["groups"] for a in g["rules"]}
    assert {"FaceApiHighLatency", "FaceApiHighErrorRate", "FaceApiTritonDown", "FaceApiCircuitOpen"} <= set(compose)
    assert set(compose) <= ALERTS
    (rule,) = render(sets=["monitoring.prometheusRule.enabled=true"]).of_kind("PrometheusRule")
    chart = {a["alert"]: a for g in rule["spec"]["groups"] for a in g["rules"]}

    def threshold(expr: str) -> float:
        m = re.search(r"(?:==|>=|>|<=|<)\s*([0-9.]+)\s*$", expr.strip())
        assert m, expr
        return float(m.group(1))

    def metrics(expr: str) -> set[str]:
        return set(re.findall(r"\b(face_api_\w+|up|nv_\w+|container_\w+|kube_\w+)\s*\{", expr))

    for name, a in compose.items():
        c = chart[name]
        assert threshold(c["expr"]) == threshold(a["expr"]), name
        assert metrics(c["expr"]) == metrics(a["expr"]), name
        assert c["for"] == a["for"] and c["labels"]["severity"] == a["labels"]["severity"], name
