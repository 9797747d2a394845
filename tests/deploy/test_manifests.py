"""Every deployment file docs/scale-out.md names is valid, offline, and agrees with the others.

- deploy/compose.yaml against the Compose Specification's JSON schema (the copy that
  check-jsonschema ships), and its mounts, ports and wiring against the files beside it;
- deploy/k8s/: every manifest against the Kubernetes OpenAPI schemas (kubernetes-validate,
  strict: unknown fields fail), the base and the example overlay rendered by kustomize when
  `kubectl` or `kustomize` is installed, and the Deployment's probes, drain timing, mounts and
  selectors checked against the CLI and the other objects;
- every routes.yaml under deploy/ with `llm-proxy check`;
- deploy/llm-proxy.service with `systemd-analyze verify` (skipped only when it is absent).
"""

import importlib.resources
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
GRACE = 30  # the --grace every deployment passes (serve's default is timeouts.total)
K8S_VERSION = kubernetes_validate.latest_version()


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# --- compose -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def test_compose_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator_class(schema).iter_errors(compose)
    ]
    assert not errors, "\n".join(errors)


def test_compose_runs_two_gateways_with_redis_collector_and_prometheus(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert {"gateway", "redis", "otel-collector", "prometheus"} <= set(services)
    gateway = services["gateway"]
    assert gateway["deploy"]["replicas"] == 2
    assert gateway["build"]["dockerfile"] == "Containerfile"
    assert (DEPLOY / gateway["build"]["context"] / "Containerfile").is_file()
    assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
    # stop grace must cover --grace, or compose kills streams that are still finishing
    assert gateway["command"][:2] == ["llm-proxy", "serve"]
    assert f"--grace={GRACE}" in gateway["command"]
    stop = re.fullmatch(r"(\d+)s", gateway["stop_grace_period"])
    assert stop and int(stop.group(1)) > GRACE


def test_compose_mounts_exist_and_config_is_a_directory(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
    mounts = [v.split(":") for v in compose["services"]["gateway"]["volumes"]]
    config_mounts = [m for m in mounts if m[1] == "/etc/llm-proxy"]
    assert config_mounts, "routes.yaml must come from a mounted directory (hot reload)"
    assert (DEPLOY / config_mounts[0][0]).is_dir()
    assert (DEPLOY / config_mounts[0][0] / "routes.yaml").is_file()


def test_compose_traces_reach_the_collector_and_prometheus_scrapes_gateways(
    compose: dict[str, Any],
) -> None:
    env = compose["services"]["gateway"]["environment"]
    assert env["LLM_PROXY_TRACING"] == "otlp"
    endpoint = re.fullmatch(r"http://([\w-]+):(\d+)", env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint and endpoint.group(1) in compose["services"]
    collector = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert http.endswith(f":{endpoint.group(2)}")
    assert "otlp" in collector["service"]["pipelines"]["traces"]["receivers"]
    for stage in ("processors", "exporters"):
        for name in collector["service"]["pipelines"]["traces"][stage]:
            assert name in collector[stage], f"pipeline names undefined {stage[:-1]} {name}"

    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["gateway"] and sd["port"] == 8080


# --- routes.yaml under deploy/ -------------------------------------------------------------

ROUTES = sorted(DEPLOY.rglob("routes.yaml"))


@pytest.mark.parametrize("path", ROUTES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_deploy_routes_yaml_passes_check(path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "proxy", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},  # no keys set: every ${VAR:-} default must hold
    )
    assert out.returncode == 0, out.stderr


def test_the_deploy_configs_use_the_redis_the_manifests_start() -> None:
    compose_state = yaml.safe_load((DEPLOY / "conf" / "routes.yaml").read_text())["settings"]
    assert compose_state["state"] == "redis://redis:6379/0"
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert "redis" in services
    base_state = yaml.safe_load((BASE / "routes.yaml").read_text())["settings"]["state"]
    redis = {d["kind"]: d for d in load_all(BASE / "redis.yaml")}
    port = redis["Service"]["spec"]["ports"][0]["port"]
    assert base_state == f"redis://{redis['Service']['metadata']['name']}:{port}/0"


# --- Kubernetes ----------------------------------------------------------------------------


def validate(doc: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        where = "/".join(map(str, err.path))
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {err.message}")


def test_every_base_manifest_is_valid_kubernetes() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        docs = load_all(BASE / name)
        assert docs, name
        for doc in docs:
            validate(doc)


def test_kustomizations_name_files_that_exist() -> None:
    for directory in (BASE, OVERLAY):
        k = yaml.safe_load((directory / "kustomization.yaml").read_text())
        files = list(k.get("resources", []))
        for gen in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
            files += gen.get("files", []) + gen.get("envs", [])
        for name in files:
            assert (directory / name).exists(), f"{directory.name}: {name} does not exist"


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def render(directory: Path) -> list[dict[str, Any]]:
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed: manifests validated one by one")
    out = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


@pytest.fixture(scope="module", params=[BASE, OVERLAY], ids=["base", "overlay"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def test_rendered_manifests_are_valid_kubernetes(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in rendered)
    for kind in ("ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert kind in kinds
    for doc in rendered:
        validate(doc)


def the(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


@pytest.fixture(scope="module")
def base_docs() -> list[dict[str, Any]]:
    return [d for f in sorted(BASE.glob("*.yaml")) if f.name not in (
        "kustomization.yaml", "routes.yaml") for d in load_all(f)]  # fmt: skip


def gateway_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = the(docs, "Deployment", "llm-proxy")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return container  # type: ignore[no-any-return]


def test_deployment_probes_and_drain_match_the_cli(base_docs: list[dict[str, Any]]) -> None:
    deployment = the(base_docs, "Deployment", "llm-proxy")
    pod = deployment["spec"]["template"]["spec"]
    c = gateway_container(base_docs)
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    args = dict(a.removeprefix("--").split("=", 1) for a in c["args"] if a.startswith("--"))
    assert c["command"] == ["llm-proxy"] and c["args"][0] == "serve"
    assert int(args["grace"]) == GRACE
    assert args["config"] == "/etc/llm-proxy/routes.yaml"
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # the kubelet SIGKILLs at terminationGracePeriodSeconds, counted from the preStop start
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + int(args["grace"])
    # `serve --help` accepts every flag the manifest passes
    help_text = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--help"],
        capture_output=True, text=True, timeout=20, cwd=REPO, check=True,
    ).stdout  # fmt: skip
    for flag in args:
        assert f"--{flag}" in help_text


def test_deployment_mounts_the_configmap_directory_for_hot_reload(
    base_docs: list[dict[str, Any]],
) -> None:
    pod = the(base_docs, "Deployment", "llm-proxy")["spec"]["template"]["spec"]
    c = gateway_container(base_docs)
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    routes = mounts["/etc/llm-proxy"]
    assert "subPath" not in routes, "a subPath mount is never updated by the kubelet"
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmap = volumes[routes["name"]]["configMap"]["name"]
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == configmap and generator["files"] == ["routes.yaml"]
    assert generator["options"]["disableNameSuffixHash"] is True
    # read-only root: `serve` needs a writable /tmp for its stamp and worker metrics
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    # ...and a writable LLM_PROXY_STATE_DIR (the image's) for the SQLite ledger
    state_dir = re.search(r"LLM_PROXY_STATE_DIR=(\S+)", (REPO / "Containerfile").read_text())
    assert state_dir and state_dir.group(1) in mounts
    assert not mounts[state_dir.group(1)].get("readOnly", False)


def test_deployment_runs_as_the_image_user_with_keys_from_a_secret(
    base_docs: list[dict[str, Any]],
) -> None:
    pod = the(base_docs, "Deployment", "llm-proxy")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Containerfile's USER
    c = gateway_container(base_docs)
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    (source,) = c["envFrom"]
    assert source["secretRef"]["name"] == "llm-proxy-keys"
    requests = c["resources"]["requests"]
    assert requests["cpu"] == "1"  # one worker per pod uses one core (bench/README.md)
    mebibytes = int(requests["memory"].removesuffix("Mi"))
    assert mebibytes >= 103  # measured RSS after warm-up, granian's main process included


def test_service_hpa_and_pdb_select_the_gateway_pods(base_docs: list[dict[str, Any]]) -> None:
    deployment = the(base_docs, "Deployment", "llm-proxy")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = the(base_docs, "Service", "llm-proxy")
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"] for p in gateway_container(base_docs)["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in ports
    pdb = the(base_docs, "PodDisruptionBudget", "llm-proxy")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = the(base_docs, "HorizontalPodAutoscaler", "llm-proxy")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2  # with a PDB of maxUnavailable 1, one always serves


def test_overlay_replaces_routes_and_generates_the_keys_secret() -> None:
    docs = render(OVERLAY)
    secret = the(docs, "Secret", "llm-proxy-keys")
    deployment = the(docs, "Deployment", "llm-proxy")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"][0]["secretRef"]["name"] == secret["metadata"]["name"]
    configmap = the(docs, "ConfigMap", "llm-proxy-routes")
    assert configmap["metadata"]["name"] == "llm-proxy-routes"  # stable: hot reload
    assert configmap["data"]["routes.yaml"] == (OVERLAY / "routes.yaml").read_text()
    namespaced = [d for d in docs if d["kind"] != "Namespace"]
    assert all(d["metadata"].get("namespace") == "llm-proxy" for d in namespaced)


# --- systemd -------------------------------------------------------------------------------


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[Path]:
    """The unit with ExecStart pointing at this environment's console script."""
    text = (DEPLOY / "llm-proxy.service").read_text()
    script = Path(sys.executable).with_name("llm-proxy")
    assert script.exists(), "pip install -e . first: the console script is missing"
    path = tmp_path / "llm-proxy.service"
    path.write_text(text.replace("/opt/llm-proxy/bin/llm-proxy", str(script)))
    yield path


def test_systemd_unit_verifies(unit: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    out = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "llm-proxy.service" not in out.stderr, out.stderr  # warnings about our unit


def test_systemd_unit_is_hardened_reloads_and_drains() -> None:
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / "llm-proxy.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "StateDirectory": "llm-proxy",
        "KillSignal": "SIGTERM",
    }.items():
        assert settings.get(key) == [value], key
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert settings["EnvironmentFile"][0].lstrip("-") == "/etc/llm-proxy/keys.env"
    grace = re.search(r"--grace (\d+)", settings["ExecStart"][0])
    assert grace and int(settings["TimeoutStopSec"][0]) > int(grace.group(1))
