"""What a pod asks for, turned into what a local process needs: argv, env, files, mounts.

The process kubelet reads pods as the JSON the API server sends; this module is the
edge where those dictionaries are read, so that the rest of the kubelet works with
:class:`ContainerPlan` and friends. It follows the kubelet's rules where they matter to
keepvip's manifests:

* ``command`` replaces the image entrypoint, ``args`` its arguments; ``$(VAR)`` refers to
  the container's own environment and ``$$`` escapes a dollar. There are no images: a
  container without ``command`` needs an entrypoint registered for its image.
* ``env`` values, ``valueFrom.fieldRef`` (downward API), ``secretKeyRef`` and
  ``configMapKeyRef``; ``envFrom`` with secrets and config maps.
* volumes ``secret``, ``configMap``, ``emptyDir``, ``hostPath`` and the ``projected``
  forms of secret and config map are materialised as files under the pod's directory
  and bind-mounted at their ``mountPath`` (``subPath`` and ``readOnly`` honoured). The
  ServiceAccount token volume that admission adds to every pod is just a secret volume,
  so ``/var/run/secrets/kubernetes.io/serviceaccount`` holds the pod's own token, CA and
  namespace, and ``load_incluster_config()`` authenticates as the pod's ServiceAccount.
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSON = dict[str, Any]
SecretReader = Callable[[str, str], Mapping[str, bytes] | None]
"""(namespace, name) -> decoded data of a Secret or ConfigMap, ``None`` when absent."""

SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


class PodSpecError(ValueError):
    """The pod asks for something this kubelet cannot provide (reason, message)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Mount:
    """One bind mount: ``source`` on the host at ``target`` inside the container."""

    source: Path
    target: str
    read_only: bool


@dataclass(frozen=True)
class Probe:
    """A readiness or liveness probe (exec, httpGet or tcpSocket)."""

    exec_command: list[str] | None
    http_get: tuple[str, int, str, str] | None  # (host, port, path, scheme)
    tcp_socket: tuple[str, int] | None
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int


@dataclass(frozen=True)
class ContainerPlan:
    """Everything needed to run one container as a local process."""

    name: str
    image: str
    argv: list[str]
    env: dict[str, str]
    working_dir: str | None
    mounts: list[Mount]
    pre_stop: list[str] | None
    readiness: Probe | None
    liveness: Probe | None


@dataclass(frozen=True)
class PodContext:
    """The facts of a pod and its node that downward-API references resolve to."""

    pod: JSON
    node_name: str
    host_ip: str
    pod_ip: str
    lookup_secret: SecretReader
    lookup_config_map: SecretReader
    base_env: Mapping[str, str] = field(default_factory=dict)


def image_repository(image: str) -> str:
    """``registry/name:tag@digest`` -> ``registry/name`` (the key for entrypoints)."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image = image[: len(image) - len(last)] + last.split(":", 1)[0]
    return image


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known variables replaced, ``$$`` -> ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, text)


def field_value(ctx: PodContext, path: str) -> str:
    """The value of a downward-API ``fieldRef.fieldPath``."""
    meta = ctx.pod.get("metadata", {})
    simple: dict[str, str] = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": ctx.node_name,
        "spec.serviceAccountName": ctx.pod.get("spec", {}).get("serviceAccountName", ""),
        "status.hostIP": ctx.host_ip,
        "status.podIP": ctx.pod_ip,
        "status.podIPs": ctx.pod_ip,
    }
    if path in simple:
        return simple[path]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    raise PodSpecError("CreateContainerConfigError", f"unsupported fieldRef {path!r}")


def _key_ref(ctx: PodContext, ref: JSON, reader: SecretReader, kind: str) -> str | None:
    namespace = ctx.pod["metadata"]["namespace"]
    data = reader(namespace, ref["name"])
    optional = bool(ref.get("optional", False))
    if data is None or ref["key"] not in data:
        if optional:
            return None
        raise PodSpecError("CreateContainerConfigError",
                           f"{kind} {ref['name']!r} key {ref['key']!r} not found")
    return data[ref["key"]].decode()


def resolve_env(ctx: PodContext, container: JSON) -> dict[str, str]:
    """The container's environment: base env, ``envFrom``, then ``env`` in order."""
    env: dict[str, str] = dict(ctx.base_env)
    namespace = ctx.pod["metadata"]["namespace"]
    for source in container.get("envFrom", []) or []:
        prefix = source.get("prefix", "")
        for key, reader, kind in (("secretRef", ctx.lookup_secret, "secret"),
                                  ("configMapRef", ctx.lookup_config_map, "configmap")):
            ref = source.get(key)
            if ref is None:
                continue
            data = reader(namespace, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise PodSpecError("CreateContainerConfigError", f"{kind} {ref['name']!r} not found")
            env.update({prefix + k: v.decode() for k, v in data.items()})
    for var in container.get("env", []) or []:
        name = var["name"]
        if "valueFrom" not in var or var["valueFrom"] is None:
            env[name] = expand(var.get("value") or "", env)
            continue
        vf = var["valueFrom"]
        value: str | None
        if vf.get("fieldRef"):
            value = field_value(ctx, vf["fieldRef"]["fieldPath"])
        elif vf.get("secretKeyRef"):
            value = _key_ref(ctx, vf["secretKeyRef"], ctx.lookup_secret, "secret")
        elif vf.get("configMapKeyRef"):
            value = _key_ref(ctx, vf["configMapKeyRef"], ctx.lookup_config_map, "configmap")
        else:
            raise PodSpecError("CreateContainerConfigError", f"unsupported valueFrom for {name}")
        if value is not None:
            env[name] = value
    return env


def _write_items(directory: Path, data: Mapping[str, bytes], items: list[JSON] | None,
                 mode: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    chosen = ([(i["key"], i["path"], i.get("mode", mode)) for i in items] if items
              else [(k, k, mode) for k in data])
    for key, rel, file_mode in chosen:
        if key not in data:
            continue
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[key])
        target.chmod(file_mode)


def _volume_sources(vol: JSON) -> tuple[list[tuple[str, JSON]], int]:
    """The (kind, source) pairs whose data fill a volume, and the default file mode."""
    mode = 0o644
    if vol.get("secret"):
        return [("secret", vol["secret"])], vol["secret"].get("defaultMode", mode)
    if vol.get("configMap"):
        return [("configMap", vol["configMap"])], vol["configMap"].get("defaultMode", mode)
    if vol.get("projected"):
        sources = [(kind, src[kind]) for src in vol["projected"].get("sources", []) or []
                   for kind in ("secret", "configMap") if src.get(kind)]
        return sources, vol["projected"].get("defaultMode", mode)
    if vol.get("emptyDir") is not None:
        return [], mode
    raise PodSpecError("CreateContainerConfigError",
                       f"volume {vol['name']!r}: only secret, configMap, projected, emptyDir "
                       "and hostPath volumes are supported")


def materialise_volumes(ctx: PodContext, volumes_dir: Path) -> dict[str, Path]:
    """Write every volume of the pod under ``volumes_dir``; returns name -> host path."""
    namespace = ctx.pod["metadata"]["namespace"]
    paths: dict[str, Path] = {}
    for vol in ctx.pod.get("spec", {}).get("volumes", []) or []:
        name = vol["name"]
        target = volumes_dir / name
        if vol.get("hostPath"):
            paths[name] = Path(vol["hostPath"]["path"])
            if vol["hostPath"].get("type") in ("DirectoryOrCreate",):
                paths[name].mkdir(parents=True, exist_ok=True)
            continue
        target.mkdir(parents=True, exist_ok=True)
        paths[name] = target
        sources, mode = _volume_sources(vol)
        for kind, src in sources:
            ref_name = src.get("secretName") or src.get("name") or ""
            reader = ctx.lookup_secret if kind == "secret" else ctx.lookup_config_map
            data = reader(namespace, ref_name)
            if data is None:
                if src.get("optional"):
                    continue
                raise PodSpecError("CreateContainerConfigError",
                                   f"volume {name!r}: {kind} {ref_name!r} not found")
            _write_items(target, data, src.get("items"), mode)
    return paths


def _probe(raw: JSON | None, pod_ip: str, ports: Mapping[str, int]) -> Probe | None:
    if not raw:
        return None

    def port_of(value: int | str) -> int:
        if isinstance(value, int) or str(value).isdigit():
            return int(value)
        return ports[str(value)]

    http = raw.get("httpGet")
    tcp = raw.get("tcpSocket")
    return Probe(
        exec_command=list(raw["exec"]["command"]) if raw.get("exec") else None,
        http_get=((http.get("host") or pod_ip, port_of(http["port"]), http.get("path", "/"),
                   http.get("scheme", "HTTP").lower()) if http else None),
        tcp_socket=(tcp.get("host") or pod_ip, port_of(tcp["port"])) if tcp else None,
        initial_delay=float(raw.get("initialDelaySeconds", 0)),
        period=float(raw.get("periodSeconds", 10)),
        timeout=float(raw.get("timeoutSeconds", 1)),
        success_threshold=int(raw.get("successThreshold", 1)),
        failure_threshold=int(raw.get("failureThreshold", 3)),
    )


def plan_container(ctx: PodContext, container: JSON, volume_paths: Mapping[str, Path],
                   entrypoints: Mapping[str, list[str]]) -> ContainerPlan:
    """Turn one container of the pod into a :class:`ContainerPlan`."""
    env = resolve_env(ctx, container)
    image = container.get("image", "")
    command = container.get("command")
    args = container.get("args") or []
    if not command:
        command = entrypoints.get(image_repository(image))
        if command is None:
            raise PodSpecError("CreateContainerError",
                               f"container {container['name']!r} has no command and no entrypoint "
                               f"is registered for image {image!r}")
    argv = [expand(a, env) for a in [*command, *args]]
    mounts = []
    for vm in container.get("volumeMounts", []) or []:
        src = volume_paths.get(vm["name"])
        if src is None:
            raise PodSpecError("CreateContainerConfigError", f"no volume {vm['name']!r}")
        if vm.get("subPath"):
            src = src / vm["subPath"]
        mounts.append(Mount(src, vm["mountPath"], bool(vm.get("readOnly", False))))
    ports = {p["name"]: int(p["containerPort"]) for p in container.get("ports", []) or []
             if p.get("name")}
    lifecycle = container.get("lifecycle") or {}
    pre_stop = (lifecycle.get("preStop") or {}).get("exec")
    return ContainerPlan(
        name=container["name"], image=image, argv=argv, env=env,
        working_dir=container.get("workingDir"), mounts=mounts,
        pre_stop=list(pre_stop["command"]) if pre_stop else None,
        readiness=_probe(container.get("readinessProbe"), ctx.pod_ip, ports),
        liveness=_probe(container.get("livenessProbe"), ctx.pod_ip, ports),
    )


# Where the launcher parks every mount source before it mounts anything over the
# container's paths: a volume mounted on /tmp must not hide the pod directory (itself
# often under /tmp) that the next mounts come from.
MOUNT_STAGE = "/run/keepvip-kubelet-stage"


def _covers(target: str, path: Path) -> bool:
    return path == Path(target) or Path(target) in path.parents


def launcher_script(hostname: str, mounts: list[Mount], working_dir: str | None,
                    keep: Sequence[Path] = ()) -> str:  # fmt: skip
    """A POSIX shell script run in fresh mount and UTS namespaces inside the node's network
    namespace: it sets the hostname, makes the bind mounts (private to this container,
    invisible to the host and to other pods), changes directory and execs ``"$@"``.

    Every source is first bound under a private tmpfs at :data:`MOUNT_STAGE`, so the
    order of the targets cannot shadow a source that lies below an earlier target.
    ``keep`` are host directories the container's program itself lives in (the project
    and its virtualenv: the host file system is the "image" here); a volume mounted over
    one of them, such as an emptyDir on /tmp while the project is checked out below /tmp,
    would hide the program, so they are bound back at their own paths afterwards.
    """
    q = shlex.quote
    lines = ["#!/bin/sh", "set -e", f"echo {q(hostname)} > /proc/sys/kernel/hostname"]
    hidden = [k for k in keep if any(_covers(m.target, k) for m in mounts)]
    if mounts:
        lines += [f"mkdir -p {MOUNT_STAGE}", f"mount -t tmpfs keepvip-stage {MOUNT_STAGE}"]
    for index, m in enumerate(mounts):
        staged = q(f"{MOUNT_STAGE}/{index}")
        lines.append(f"mkdir -p {staged}" if m.source.is_dir() else f": > {staged}")
        lines.append(f"mount --bind {q(str(m.source))} {staged}")
    for index, k in enumerate(hidden):
        staged = q(f"{MOUNT_STAGE}/keep-{index}")
        lines += [f"mkdir -p {staged}", f"mount --bind {q(str(k))} {staged}"]
    for index, m in enumerate(mounts):
        t = q(m.target)
        if m.source.is_dir():
            lines.append(f"mkdir -p {t}")
        else:
            lines.append(f'mkdir -p "$(dirname {t})"; [ -e {t} ] || : > {t}')
        lines.append(f"mount --bind {q(f'{MOUNT_STAGE}/{index}')} {t}")
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {t}")
    for index, k in enumerate(hidden):
        lines += [f"mkdir -p {q(str(k))}", f"mount --bind {q(f'{MOUNT_STAGE}/keep-{index}')} {q(str(k))}"]
    if working_dir:
        lines.append(f"mkdir -p {q(working_dir)}; cd {q(working_dir)}")
    lines.append('exec "$@"')
    return "\n".join(lines) + "\n"


def decode_secret_data(obj: JSON) -> dict[str, bytes]:
    """A Secret's ``data`` (base64) and ``stringData`` as bytes."""
    out = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    out.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
    return out


def decode_config_map_data(obj: JSON) -> dict[str, bytes]:
    """A ConfigMap's ``data`` and ``binaryData`` as bytes."""
    out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out
