"""A small ``kustomize build`` in Python: the part of it that ``deploy/kubernetes`` uses.

kustomize itself is a Go binary that neither PyPI nor Debian's archive carries, so the tests
render the manifests with this instead: ``resources`` (files and directories), ``components``
(kind Component), ``patches`` with a ``path`` (strategic merge, by kind and name), ``images``
and ``namespace``. A kustomization that uses anything else is refused, not half-rendered. Where
``kubectl`` is on PATH the tests also check that ``kubectl kustomize`` renders the same objects.

Strategic merge as Kubernetes does it for these fields: maps merge key by key (``null``
deletes), the lists below merge item by item on their merge key, any other list is replaced.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

FIELDS = {
    "Kustomization": {"apiVersion", "kind", "namespace", "resources", "components", "patches"}
    | {"images"},
    "Component": {"apiVersion", "kind", "resources", "patches"},
}
API_VERSIONS = {
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
    "Component": "kustomize.config.k8s.io/v1alpha1",
}
#: List fields that strategic merge merges item by item (the patchMergeKey of the Kubernetes
#: types); ``ports`` is keyed on containerPort in a container, on port in a Service.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
}
#: Kinds without a namespace (the namespace transformer leaves them alone).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


class Unsupported(ValueError):
    """The kustomization uses something this renderer does not do."""


def build(directory: Path) -> list[Object]:
    """The objects ``kustomize build directory`` prints (in file order, not kustomize's)."""
    return _build(directory, "Kustomization")


def _read(directory: Path, kind: str) -> Object:
    path = directory / "kustomization.yaml"
    spec = yaml.safe_load(path.read_text())
    if spec.get("kind") != kind or spec.get("apiVersion") != API_VERSIONS[kind]:
        raise Unsupported(f"{path}: expected {API_VERSIONS[kind]} {kind}")
    unknown = set(spec) - FIELDS[kind]
    if unknown:
        raise Unsupported(f"{path}: fields {sorted(unknown)} are not rendered here")
    return spec


def _load(path: Path) -> list[Object]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _build(directory: Path, kind: str, objects: list[Object] | None = None) -> list[Object]:
    spec = _read(directory, kind)
    objects = [] if objects is None else objects
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            if kind == "Component":
                raise Unsupported(f"{directory}: a component's resources must be files")
            objects = objects + _build(target, "Kustomization")
        else:
            objects = objects + _load(target)
    for entry in spec.get("components", []):
        objects = _build((directory / entry).resolve(), "Component", objects)
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise Unsupported(f"{directory}: only patches with a path: {patch}")
        for doc in _load(directory / patch["path"]):
            objects = _patch(objects, doc, directory / patch["path"])
    for image in spec.get("images", []):
        objects = [_set_image(obj, image) for obj in objects]
    if "namespace" in spec:
        objects = [_namespaced(obj, spec["namespace"]) for obj in objects]
    keys = [(obj["kind"], obj["metadata"]["name"]) for obj in objects]
    duplicates = {key for key in keys if keys.count(key) > 1}
    if duplicates:
        raise ValueError(f"{directory}: objects defined twice: {sorted(duplicates)}")
    return objects


def _patch(objects: list[Object], patch: Object, path: Path) -> list[Object]:
    key = (patch["apiVersion"], patch["kind"], patch["metadata"]["name"])
    hits = [
        i
        for i, obj in enumerate(objects)
        if (obj["apiVersion"], obj["kind"], obj["metadata"]["name"]) == key
    ]
    if len(hits) != 1:
        raise ValueError(f"{path}: patch target {key} matches {len(hits)} objects")
    patched = list(objects)
    patched[hits[0]] = merge(objects[hits[0]], patch)
    return patched


def merge(base: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge of ``patch`` onto ``base`` (neither is changed)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if key.startswith("$"):
                raise Unsupported(f"strategic merge directive {key} is not rendered here")
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = merge(merged[key], value, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list):
        key = MERGE_KEYS.get(field)
        if field == "ports" and all(isinstance(item, dict) for item in base + patch):
            key = "containerPort" if any("containerPort" in p for p in base + patch) else "port"
        if key is None:
            return copy.deepcopy(patch)
        merged_list = copy.deepcopy(base)
        for item in patch:
            at = [i for i, old in enumerate(merged_list) if old.get(key) == item.get(key)]
            if at:
                merged_list[at[0]] = merge(merged_list[at[0]], item)
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


def pod_spec(obj: Object) -> Object | None:
    """The pod template's spec of a workload (Deployment, StatefulSet, Job), else None."""
    template = obj.get("spec", {}).get("template")
    return None if template is None else template.get("spec")


def _split_image(image: str) -> tuple[str, str | None]:
    name, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return image, None


def _set_image(obj: Object, image: Object) -> Object:
    if set(image) - {"name", "newName", "newTag"}:
        raise Unsupported(f"images: only name, newName, newTag: {image}")
    spec = pod_spec(obj)
    if spec is None:
        return obj
    obj = copy.deepcopy(obj)
    spec = pod_spec(obj)
    assert spec is not None
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        name, tag = _split_image(container["image"])
        if name != image["name"]:
            continue
        name = image.get("newName", name)
        tag = image.get("newTag", tag)
        container["image"] = name if tag is None else f"{name}:{tag}"
    return obj


def _namespaced(obj: Object, namespace: str) -> Object:
    if obj["kind"] in CLUSTER_SCOPED:
        return obj
    obj = copy.deepcopy(obj)
    obj["metadata"]["namespace"] = namespace
    return obj
