"""deploy/kubernetes, rendered and checked offline: the base, each overlay, and the two
components together.

Rendering: ``tests/deploy/kustomize.py`` (kustomize is a Go binary on neither PyPI nor
Debian's archive); where ``kubectl`` is on PATH, ``kubectl kustomize`` must render the same
objects. Core objects are validated with kubernetes-validate's bundled schemas of Kubernetes
``K8S_VERSIONS`` in strict mode (an unknown field fails); KEDA's ScaledObject and
TriggerAuthentication against their CRDs' openAPIV3Schema, vendored from KEDA ``KEDA_VERSION``
in ``tests/deploy/data``, made strict the same way. Then what a schema cannot see: the
commands are the real CLI's, the probes the API's real routes, secrets come from the Secret
only, the selectors select the pods they are meant to, the grace period covers the worker's
hand-back, the ScaledObject's query is storage's.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer.main
import yaml
from kubernetes_validate import utils as kv_utils

import storage
from tests.deploy.kustomize import Object, build, pod_spec
from tests.harness import dockerfile_instructions

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
DATA = Path(__file__).resolve().parent / "data"
DOCKERFILE = ROOT / "Dockerfile"

#: The Kubernetes versions validated against: the oldest that KEDA 2.20 is tested on (it is
#: tested on 1.33-1.35), and the newest that kubernetes-validate 1.37.0 bundles (1.25-1.37).
K8S_VERSIONS = ("1.33", "1.37")
KEDA_VERSION = "2.20.2"
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): DATA / "keda-scaledobject-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): DATA
    / "keda-triggerauthentication-v1alpha1.json",
}
SECRET = "init-tuner"  # the Secret the README has you create; never part of the manifests
NAMESPACE = "init-tuner"
LABEL = "app.kubernetes.io/component"
TUNER_IMAGES = {"init-tuner", "init-tuner-gpu"}
#: What the worker's hand-back takes beyond the running epoch: the hand-back transaction and
#: Optuna's tell (well under a second), the release of anything still held (up to five tries,
#: 6.2 s of backoff over a database blip), the heartbeat's stop and the worker's deregistration.
HAND_BACK_WRITES_S = 30
EPOCH_ANNOTATION = "init-tuner/longest-epoch-seconds"

RENDERS = ("base", "overlays/gpu", "overlays/in-cluster-postgres", "gpu+postgres")
GPU_RENDERS = {"overlays/gpu", "gpu+postgres"}
POSTGRES_RENDERS = {"overlays/in-cluster-postgres", "gpu+postgres"}


def _directory(name: str, scratch: Path) -> Path:
    if name != "gpu+postgres":
        return DEPLOY / name
    # Both components on the base, as a user's own overlay would combine them.
    overlay = scratch / "gpu-postgres"
    overlay.mkdir(exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        # relative: kustomize refuses absolute paths
        "resources": [os.path.relpath(DEPLOY / "base", overlay)],
        "components": [
            os.path.relpath(DEPLOY / "components" / component, overlay)
            for component in ("gpu", "postgres")
        ],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return overlay


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kustomize")


@pytest.fixture(scope="module")
def rendered(scratch: Path) -> dict[str, list[Object]]:
    return {name: build(_directory(name, scratch)) for name in RENDERS}


@pytest.fixture(params=RENDERS)
def name(request: pytest.FixtureRequest) -> str:
    """Which render: the base, an overlay, or both components together."""
    return str(request.param)


@pytest.fixture
def render(name: str, rendered: dict[str, list[Object]]) -> list[Object]:
    return rendered[name]


# -- helpers ---------------------------------------------------------------------------------


def _one(objects: list[Object], kind: str, name: str) -> Object:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _workloads(objects: list[Object]) -> Iterator[Object]:
    return (o for o in objects if pod_spec(o) is not None)


def _pods(objects: list[Object]) -> dict[str, Object]:
    """Each workload's pod template, by workload name."""
    return {o["metadata"]["name"]: o["spec"]["template"] for o in _workloads(objects)}


def _container(workload: Object) -> Object:
    spec = pod_spec(workload)
    assert spec is not None
    (container,) = spec["containers"]
    return container


def _selects(selector: Object, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a set of labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present, value = key in labels, labels.get(key)
        ok = {
            "In": present and value in values,
            "NotIn": not present or value not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not ok:
            return False
    return True


def _selected(selector: Object, objects: list[Object]) -> set[str]:
    """Components of the pod templates in ``objects`` that ``selector`` selects."""
    return {
        template["metadata"]["labels"][LABEL]
        for template in _pods(objects).values()
        if _selects(selector, template["metadata"]["labels"])
    }


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _cli_command(name: str) -> Any:
    from tuner.cli import app

    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def _parse(container: Object) -> tuple[str, dict[str, Any]]:
    """The container's tuner subcommand and its options, parsed by the real CLI."""
    assert container["command"] == ["tuner"], container["command"]
    name, *args = container["args"]
    command = _cli_command(name)
    return name, dict(command.make_context(name, list(args)).params)



def _strict(schema: Any) -> Any:
    """An openAPIV3Schema where an object with listed properties allows no other field (what
    kubectl's strict field validation rejects), unless it says it keeps unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


# -- rendering --------------------------------------------------------------------------------


def test_kubectl_kustomize_renders_the_same_objects(
    rendered: dict[str, list[Object]], scratch: Path
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH; the Python renderer's output was checked alone")
    version = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=60
    )
    kustomize = json.loads(version.stdout or "{}").get("kustomizeVersion", "")
    if not re.match(r"v([5-9]|\d\d)\.", kustomize):  # components and `patches` need v4+; v5 here
        pytest.skip(f"kubectl's kustomize is {kustomize or 'unknown'}, older than v5")
    for name in RENDERS:
        out = subprocess.run(
            [kubectl, "kustomize", str(_directory(name, scratch))],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        theirs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out) if o}
        ours = {(o["kind"], o["metadata"]["name"]): o for o in rendered[name]}
        assert ours == theirs, name


def test_the_renders_hold_what_each_should(rendered: dict[str, list[Object]]) -> None:
    core = {
        ("ServiceAccount", "init-tuner"),
        ("Deployment", "init-tuner-api"),
        ("Service", "init-tuner-api"),
        ("Deployment", "init-tuner-worker"),
        ("Job", "init-tuner-migrate"),
        ("ScaledObject", "init-tuner-worker"),
        ("TriggerAuthentication", "init-tuner-database"),
        ("PodDisruptionBudget", "init-tuner-api"),
        ("PodDisruptionBudget", "init-tuner-worker"),
        ("NetworkPolicy", "init-tuner-default-deny"),
        ("NetworkPolicy", "init-tuner-dns"),
        ("NetworkPolicy", "init-tuner-api-ingress"),
        ("NetworkPolicy", "init-tuner-database"),
    }
    postgres = {
        ("StatefulSet", "init-tuner-postgres"),
        ("Service", "init-tuner-postgres"),
        ("NetworkPolicy", "init-tuner-postgres"),
    }
    for name, objects in rendered.items():
        keys = {(o["kind"], o["metadata"]["name"]) for o in objects}
        assert keys == (core | postgres if name in POSTGRES_RENDERS else core), name
        assert {o["metadata"].get("namespace") for o in objects} == {NAMESPACE}, name


# -- schemas ----------------------------------------------------------------------------------


def test_every_object_is_valid_for_kubernetes_and_keda(rendered: dict[str, list[Object]]) -> None:
    crds = {key: json.loads(path.read_text()) for key, path in CRD_SCHEMAS.items()}
    for key, crd in crds.items():
        assert KEDA_VERSION in crd["$comment"] and (crd["group"], crd["version"]) == (
            key[0].split("/")[0],
            key[0].split("/")[1],
        )
    validators = {
        key: jsonschema.Draft7Validator(_strict(crd["openAPIV3Schema"]))
        for key, crd in crds.items()
    }
    seen: set[str] = set()
    for name, objects in rendered.items():
        for obj in objects:
            text = json.dumps(obj, sort_keys=True)
            if text in seen:  # the same object in several renders: validated once
                continue
            seen.add(text)
            where = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
            key = (obj["apiVersion"], obj["kind"])
            if key in validators:
                errors = [e.message for e in validators[key].iter_errors(obj)]
                assert not errors, f"{where}: {errors}"
                assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", obj["metadata"]["name"])
                continue
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kv_utils.ValidationError as exc:
                    path = ".".join(str(p) for p in exc.path)
                    pytest.fail(f"{where}: Kubernetes {version}: {path}: {exc.message}")
                except kv_utils.SchemaNotFoundError:
                    pytest.fail(f"{where}: neither a Kubernetes {version} kind nor a vendored CRD")


def test_the_strict_checks_catch_a_misspelt_field(rendered: dict[str, list[Object]]) -> None:
    objects = rendered["base"]
    deployment = copy.deepcopy(_one(objects, "Deployment", "init-tuner-worker"))
    _container(deployment)["imagePullPolicyy"] = "IfNotPresent"
    with pytest.raises(kv_utils.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
    scaled = copy.deepcopy(_one(objects, "ScaledObject", "init-tuner-worker"))
    scaled["spec"]["minReplicas"] = 0
    schema = json.loads(CRD_SCHEMAS["keda.sh/v1alpha1", "ScaledObject"].read_text())
    validator = jsonschema.Draft7Validator(_strict(schema["openAPIV3Schema"]))
    assert list(validator.iter_errors(scaled))


# -- what runs ------------------------------------------------------------------------------


def test_the_image_is_the_dockerfiles_and_runs_as_its_user(render: list[Object]) -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    assert [json.loads(a) for k, a in instructions if k == "ENTRYPOINT"][-1] == ["tuner"]
    (useradd,) = [a for k, a in instructions if k == "RUN" and "useradd" in a]
    uid = int(re.search(r"--uid (\d+)", useradd).group(1))  # type: ignore[union-attr]
    for workload in _workloads(render):
        container = _container(workload)
        image = container["image"].rpartition(":")[0]
        if workload["spec"]["template"]["metadata"]["labels"][LABEL] == "postgres":
            assert image == "postgres" and container["image"] == "postgres:15"
            continue
        assert image in TUNER_IMAGES, container["image"]
        assert container["command"] == ["tuner"]  # the image's entrypoint, stated
        security = pod_spec(workload)["securityContext"]  # type: ignore[index]
        assert security["runAsUser"] == security["runAsGroup"] == uid


def test_every_pod_runs_unprivileged(render: list[Object]) -> None:
    """Pod Security's restricted profile, a read-only root and no API token in any pod."""
    for workload in _workloads(render):
        spec = pod_spec(workload)
        assert spec is not None
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] > 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts  # the only writable places are volumes
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"])
            assert "memory" in resources["limits"]


def test_the_commands_are_the_real_clis(render: list[Object]) -> None:
    api = _container(_one(render, "Deployment", "init-tuner-api"))
    name, options = _parse(api)
    assert name == "serve" and options["host"] == "0.0.0.0" and options["workers"] == 0
    assert options["port"] == api["ports"][0]["containerPort"] == 8000

    job = _one(render, "Job", "init-tuner-migrate")
    migrate = _container(job)
    assert migrate["args"] == ["migrate"] and _parse(migrate)[0] == "migrate"
    assert "upgrade" in (_cli_command("migrate").help or "")
    assert pod_spec(job)["restartPolicy"] == "Never"  # type: ignore[index]
    assert job["spec"]["backoffLimit"] >= 1

    worker = _container(_one(render, "Deployment", "init-tuner-worker"))
    name, options = _parse(worker)
    assert name == "worker" and not options["study"] and not options["exit_when_idle"]
    env = {e["name"] for e in worker["env"]}
    envvars = {p.envvar for p in _cli_command("worker").params if p.envvar}
    assert envvars <= env  # TUNER_HEARTBEAT_INTERVAL, TUNER_GRACE: the options' own names


@pytest.fixture(scope="module")
def routes() -> set[str]:
    """The paths the API answers GET on (its OpenAPI schema, as the app builds it)."""
    from api._app import create_app
    from api.config import Settings

    app = create_app(Settings(database_url="sqlite://", api_tokens="admin:x", dashboard=False))
    return {path for path, methods in app.openapi()["paths"].items() if "get" in methods}


def test_the_probes_are_the_apis_health_routes(render: list[Object], routes: set[str]) -> None:
    api = _container(_one(render, "Deployment", "init-tuner-api"))
    ports = {p["name"] for p in api["ports"]}
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"  # the process answers
    assert api["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"  # the database answers
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert api[probe]["httpGet"]["path"] in routes
        assert api[probe]["httpGet"]["port"] in ports
    grace = pod_spec(_one(render, "Deployment", "init-tuner-api"))["terminationGracePeriodSeconds"]  # type: ignore[index]
    assert grace > int(api["lifecycle"]["preStop"]["exec"]["command"][1])


# -- secrets ----------------------------------------------------------------------------------


def test_no_secret_is_written_in_the_manifests(render: list[Object]) -> None:
    assert not [o for o in render if o["kind"] in ("Secret", "ConfigMap")]
    for text in (s for o in render for s in _strings(o)):
        assert not re.search(r"postgres(ql)?(\+\w+)?://|(admin|read):\S", text), text


def test_settings_come_from_the_secret_under_the_names_the_app_reads(render: list[Object]) -> None:
    from api.config import Settings

    prefix = Settings.model_config["env_prefix"]
    expected = {
        "init-tuner-api": {
            storage.DATABASE_URL_ENV: "database-url",
            f"{prefix}API_TOKENS".upper(): "api-tokens",
        },
        "init-tuner-worker": {storage.DATABASE_URL_ENV: "database-url"},
        "init-tuner-migrate": {storage.DATABASE_URL_ENV: "database-url"},
        "init-tuner-postgres": {"POSTGRES_PASSWORD": "postgres-password"},
    }
    assert "api_tokens" in Settings.model_fields
    for workload in _workloads(render):
        env = {e["name"]: e for e in _container(workload)["env"]}
        from_secret = {
            name: e["valueFrom"]["secretKeyRef"]
            for name, e in env.items()
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert {n: ref["key"] for n, ref in from_secret.items()} == expected[
            workload["metadata"]["name"]
        ]
        assert {ref["name"] for ref in from_secret.values()} == {SECRET}
        for name, variable in env.items():  # the rest are plain settings, never credentials
            assert name in from_secret or not re.search(r"URL|TOKEN|PASSWORD|SECRET", name)
            assert ("value" in variable) != (name in from_secret)
    auth = _one(render, "TriggerAuthentication", "init-tuner-database")
    assert auth["spec"] == {
        "secretTargetRef": [{"parameter": "connection", "name": SECRET, "key": "database-url"}]
    }


# -- the worker and its scaling ---------------------------------------------------------------


def test_gpu_workers_get_a_gpu_and_the_cuda_image(name: str, render: list[Object]) -> None:
    gpu = name in GPU_RENDERS
    worker = _one(render, "Deployment", "init-tuner-worker")
    container = _container(worker)
    _, options = _parse(container)
    limits = container["resources"]["limits"]
    if gpu:
        assert limits["nvidia.com/gpu"] == 1 and options["device"] == "cuda:0"
        assert container["image"].startswith("init-tuner-gpu:")
        tolerations = pod_spec(worker)["tolerations"]  # type: ignore[index]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
            tolerations
        )
    else:
        assert options["device"] == "cpu" and container["image"].startswith("init-tuner:")
    for other in _workloads(render):  # nothing else ever asks for a GPU
        if other is not worker:
            assert "nvidia.com/gpu" not in json.dumps(other)
    assert ("nvidia.com/gpu" in json.dumps(worker)) == gpu


def test_the_grace_period_covers_the_workers_hand_back(render: list[Object]) -> None:
    worker = _one(render, "Deployment", "init-tuner-worker")
    epoch = int(worker["metadata"]["annotations"][EPOCH_ANNOTATION])
    grace = pod_spec(worker)["terminationGracePeriodSeconds"]  # type: ignore[index]
    assert epoch > 0 and grace >= epoch + HAND_BACK_WRITES_S
    # A worker stopped by a scale-down or a rollout holds no GPU past it: at most one goes.
    assert worker["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert "replicas" not in worker["spec"]  # KEDA's HPA owns it


def test_keda_scales_the_worker_deployment_on_storages_query(render: list[Object]) -> None:
    scaled = _one(render, "ScaledObject", "init-tuner-worker")
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    worker = _one(render, target["kind"], target["name"])
    assert (target["apiVersion"], worker["metadata"]["name"]) == ("apps/v1", "init-tuner-worker")
    assert spec["minReplicaCount"] == 0 < spec["maxReplicaCount"]  # also the CRD's CEL rule
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "postgresql"
    assert trigger["metadata"]["query"] == storage.WORKER_DEMAND_SQL
    assert float(trigger["metadata"]["activationTargetQueryValue"]) == 0
    auth = trigger["authenticationRef"]
    _one(render, auth.get("kind", "TriggerAuthentication"), auth["name"])
    # One worker holds slots x population trials: the target per replica.
    _, options = _parse(_container(worker))
    assert options["population"] == 1  # populations off: one trial per slot
    held = options["slots"] * options["population"]
    assert float(trigger["metadata"]["targetQueryValue"]) == held
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]


# -- selectors --------------------------------------------------------------------------------


def test_workload_service_and_budget_selectors_match_their_pods(render: list[Object]) -> None:
    for workload in _workloads(render):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if workload["kind"] != "Job":
            assert _selects(workload["spec"]["selector"], labels), workload["metadata"]["name"]
        assert labels[LABEL] == workload["metadata"]["labels"][LABEL]
    for service in (o for o in render if o["kind"] == "Service"):
        component = service["metadata"]["labels"][LABEL]
        assert _selected({"matchLabels": service["spec"]["selector"]}, render) == {component}
        (pod,) = [
            _container(w) for w in _workloads(render) if w["metadata"]["labels"][LABEL] == component
        ]
        names = {p["name"] for p in pod["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    budgets = {o["metadata"]["name"]: o for o in render if o["kind"] == "PodDisruptionBudget"}
    assert _selected(budgets["init-tuner-api"]["spec"]["selector"], render) == {"api"}
    assert _selected(budgets["init-tuner-worker"]["spec"]["selector"], render) == {"worker"}
    api = _one(render, "Deployment", "init-tuner-api")
    assert budgets["init-tuner-api"]["spec"]["minAvailable"] < api["spec"]["replicas"]


def test_network_policies_let_only_the_tuner_pods_reach_the_database(
    name: str, render: list[Object]
) -> None:
    policies = {o["metadata"]["name"]: o["spec"] for o in render if o["kind"] == "NetworkPolicy"}
    every = {t["metadata"]["labels"][LABEL] for t in _pods(render).values()}

    deny = policies["init-tuner-default-deny"]
    assert _selected(deny["podSelector"], render) == every
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    # DNS for every pod, nothing else in that policy.
    dns = policies["init-tuner-dns"]
    assert _selected(dns["podSelector"], render) == every
    assert {p["port"] for rule in dns["egress"] for p in rule["ports"]} == {53}

    # The API takes connections on its named port; no other pod takes any but PostgreSQL.
    ingress = {
        n: p for n, p in policies.items() if "Ingress" in p["policyTypes"] and "ingress" in p
    }
    api = policies["init-tuner-api-ingress"]
    assert _selected(api["podSelector"], render) == {"api"}
    api_ports = {
        p["name"] for p in _container(_one(render, "Deployment", "init-tuner-api"))["ports"]
    }
    assert {p["port"] for rule in api["ingress"] for p in rule["ports"]} <= api_ports

    # Egress on 5432: exactly the API, the workers and the migration.
    database = policies["init-tuner-database"]
    assert _selected(database["podSelector"], render) == {"api", "worker", "migrate"}
    egress_5432 = {
        n
        for n, p in policies.items()
        for rule in p.get("egress", [])
        for port in rule["ports"]
        if port["port"] == 5432
    }
    assert egress_5432 == {"init-tuner-database"}
    (rule,) = database["egress"]
    if name in POSTGRES_RENDERS:
        (peer,) = rule["to"]
        assert set(peer) == {"podSelector"} and _selected(peer["podSelector"], render) == {
            "postgres"
        }
        postgres = policies["init-tuner-postgres"]
        assert _selected(postgres["podSelector"], render) == {"postgres"}
        (allowed,) = postgres["ingress"]
        here = [p for p in allowed["from"] if "namespaceSelector" not in p]
        keda = [p for p in allowed["from"] if "namespaceSelector" in p]
        assert [_selected(p["podSelector"], render) for p in here] == [{"api", "worker", "migrate"}]
        assert keda[0]["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "keda"
        }
        assert set(ingress) == {"init-tuner-api-ingress", "init-tuner-postgres"}
    else:
        assert rule["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]  # external: any address
        assert set(ingress) == {"init-tuner-api-ingress"}


def test_the_in_cluster_postgres_is_what_the_database_url_must_name(
    rendered: dict[str, list[Object]],
) -> None:
    objects = rendered["overlays/in-cluster-postgres"]
    statefulset = _one(objects, "StatefulSet", "init-tuner-postgres")
    service = _one(objects, "Service", "init-tuner-postgres")
    env = {e["name"]: e.get("value") for e in _container(statefulset)["env"]}
    assert env["POSTGRES_USER"] == env["POSTGRES_DB"] == "tuner"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert [p["port"] for p in service["spec"]["ports"]] == [5432]
    readme = (ROOT / "README.md").read_text()
    assert "@init-tuner-postgres:5432/tuner" in readme  # the URL the README has you store
    for name in ("base", "overlays/gpu"):  # external by default
        assert not [o for o in rendered[name] if o["kind"] == "StatefulSet"]
