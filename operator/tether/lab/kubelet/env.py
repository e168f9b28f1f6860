"""Pure resolution of a container's environment and command line, as the kubelet does it.

`$(VAR)` references in env values, command and args expand from variables defined earlier
(`$$` escapes a dollar; unknown references stay as written), exactly Kubernetes' rule.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
TETHER_IMAGE_DEFAULT_COMMAND = ["tether"]


class ConfigError(ValueError):
    """The container's env refers to something missing (kubelet: CreateContainerConfigError)."""


def expand(text: str, env: dict[str, str]) -> str:
    """Expand `$(NAME)` from `env` in `text`; `$$` becomes `$`; unknown names stay verbatim."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _REF.sub(sub, text)


def _label_key(path: str, prefix: str) -> str | None:
    m = re.fullmatch(re.escape(prefix) + r"\['(.+)'\]", path)
    return m.group(1) if m else None


def field_ref(pod: dict, path: str, pod_ip: str, host_ip: str) -> str:
    """Return the value of a downward-API `fieldRef.fieldPath` for `pod`."""
    meta, spec = pod["metadata"], pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return simple[path]
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        key = _label_key(path, prefix)
        if key is not None:
            return meta.get(source, {}).get(key, "")
    raise ConfigError(f"unsupported fieldRef {path!r}")


def _from_source(kind: str, ref: dict, sources: dict) -> str | None:
    data = sources.get((kind, ref["name"]))
    optional = ref.get("optional", False)
    if data is None:
        if optional:
            return None
        raise ConfigError(f'{kind} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in {kind} {ref['name']}")
    return data[ref["key"]]


def references(container: dict) -> set[tuple[str, str]]:
    """Return the ('configmap'|'secret', name) pairs the container's env reads."""
    refs = set()
    for item in container.get("envFrom", []):
        if "configMapRef" in item:
            refs.add(("configmap", item["configMapRef"]["name"]))
        if "secretRef" in item:
            refs.add(("secret", item["secretRef"]["name"]))
    for var in container.get("env", []):
        src = var.get("valueFrom", {})
        if "configMapKeyRef" in src:
            refs.add(("configmap", src["configMapKeyRef"]["name"]))
        if "secretKeyRef" in src:
            refs.add(("secret", src["secretKeyRef"]["name"]))
    return refs


def container_env(
    container: dict, pod: dict, pod_ip: str, host_ip: str, sources: dict, base: dict[str, str]
) -> dict[str, str]:
    """Return the process environment: `base`, then envFrom, then env in order.

    `sources` maps ('configmap'|'secret', name) to its decoded data (absent if missing).
    Raises ConfigError for a missing non-optional reference.
    """
    env = dict(base)
    for item in container.get("envFrom", []):
        kind, ref = ("configmap", item.get("configMapRef")) if "configMapRef" in item else (
            "secret", item.get("secretRef"))  # fmt: skip
        data = sources.get((kind, ref["name"]))
        if data is None and not ref.get("optional", False):
            raise ConfigError(f'{kind} "{ref["name"]}" not found')
        for k, v in (data or {}).items():
            env[item.get("prefix", "") + k] = v
    for var in container.get("env", []):
        name, src = var["name"], var.get("valueFrom")
        if src is None:
            env[name] = expand(var.get("value", ""), env)
        elif "fieldRef" in src:
            env[name] = field_ref(pod, src["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "configMapKeyRef" in src or "secretKeyRef" in src:
            kind = "configmap" if "configMapKeyRef" in src else "secret"
            value = _from_source(kind, src.get("configMapKeyRef") or src["secretKeyRef"], sources)
            if value is not None:
                env[name] = value
        elif "resourceFieldRef" in src:
            env[name] = "0"  # the lab enforces no resources; limits read as unset
    return env


def command_line(container: dict, env: dict[str, str], bin_dir: Path) -> list[str]:
    """Return argv for a tether-image container: command (default `tether`) + args, expanded.

    A bare program name found next to the kubelet's Python (`tether`, `kopf`, `python`) is
    replaced by that path, so the container runs the same installation as the kubelet.
    """
    command = container.get("command") or TETHER_IMAGE_DEFAULT_COMMAND
    argv = [expand(a, env) for a in [*command, *container.get("args", [])]]
    head = argv[0]
    if "/" not in head:
        if head in ("python", "python3"):
            argv[0] = sys.executable
        elif (bin_dir / head).exists():
            argv[0] = str(bin_dir / head)
    return argv


def is_tether_image(image: str) -> bool:
    """Return True when the image's repository name is `tether` or ends in `-tether` (any
    registry, tag or digest): `tether:dev`, `ghcr.io/x/tether:0.1`, `tether@sha256:...`."""
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    name = last.split(":", 1)[0]
    return name == "tether" or name.endswith("-tether")
