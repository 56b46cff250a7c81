"""The speaker DaemonSet the operator owns, rendered from the chart's settings (pure).

It depends on the settings only, never on VirtualIPs: speakers watch VirtualIPs
themselves and reconfigure in place, so creating or editing a VirtualIP never rolls
the speakers.

Why each security choice:

* ``hostNetwork``: the speaker binds VIPs on the node's interfaces and sends raw VRRP
  (IP protocol 112) on the node's LAN.
* capabilities ``NET_ADMIN`` (addresses, via netlink) and ``NET_RAW`` (raw VRRP sockets,
  gratuitous ARP / unsolicited NA) only; everything else dropped, not privileged, no
  privilege escalation, read-only root filesystem.
* exec checks (off unless ``speaker.execChecks.enabled``) run as ``runAsUser`` with
  the bounding set cleared and ``no_new_privs``: the speaker drops privileges for them
  (keepvip.speaker.sandbox), so the container's root never reaches a check.
* metrics on ``status.hostIP`` only, so no VIP and no other node address serves them.
* no tolerations unless the chart opts in: a taint keeps the speaker off like any pod.
* ``runAsUser: 0``: Kubernetes grants added capabilities to root processes only (it sets
  no ambient capabilities), and the shared image runs as a non-root user by default.
* one hostPath, ``speaker.stateDir`` (``/var/lib/keepvip``), mounted at the same path:
  on kernels older than 6.3 the speaker records there which VIPs it added, so the next
  speaker on the node removes what a killed one left (issue 10, "Old kernels"). It must
  outlive the pod, hence a host directory; it holds one small JSON file, nothing secret.

Planned handover: no preStop hook. The kubelet sends SIGTERM when a pod stops (rolling
update, drain, delete); the speaker answers it by sending priority 0 (RFC 9568 §6.4.3:
a backup then takes over after Skew_Time) and removing its VIPs, within
``terminationGracePeriodSeconds``. A preStop hook would start at the same moment and
would need a second channel into the process, adding a failure mode without speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keepvip.operator.settings import OperatorSettings

FIELD_MANAGER = "keepvip-operator"
SELECTOR_LABELS = {"app.kubernetes.io/name": "keepvip", "app.kubernetes.io/component": "speaker"}
"""The DaemonSet's selector: fixed, because a selector cannot change after creation."""
MANAGED_BY = {"app.kubernetes.io/managed-by": FIELD_MANAGER}


@dataclass(frozen=True)
class Owner:
    """The object that owns the DaemonSet (the operator's Deployment): uninstall cascades."""

    api_version: str
    kind: str
    name: str
    uid: str


def speaker_command(settings: OperatorSettings) -> list[str]:
    """The speaker container's command line."""
    speaker = settings.speaker
    return [
        *speaker.command,
        "speaker",
        "--kubernetes",
        "--node",
        "$(NODE_NAME)",
        "--metrics-address",
        f"[$(HOST_IP)]:{speaker.metrics_port}",
        "--log-format",
        speaker.log_format,
        "--ownership-marker",
        speaker.ownership_marker,
        "--state-dir",
        speaker.state_dir,
        *exec_check_flags(settings),
    ]


def exec_check_flags(settings: OperatorSettings) -> list[str]:
    """The speaker's exec-check flags, always explicit (the speaker's cluster default is off too)."""
    execs = settings.speaker.exec_checks
    if not execs.enabled:
        return ["--exec-checks", "off"]
    flags = ["--exec-checks", "on", "--script-user", f"{execs.run_as_user}:{execs.run_as_group}"]
    for pattern in execs.allowed_commands:
        flags += ["--exec-allow", pattern]
    return flags


def security_context() -> dict[str, Any]:
    """The speaker container's securityContext (see the module docstring for why)."""
    return {
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsUser": 0,
        "runAsNonRoot": False,
        "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def desired_daemonset(settings: OperatorSettings, owner: Owner | None = None) -> dict[str, Any]:
    """The whole DaemonSet, as applied with server-side apply."""
    speaker = settings.speaker
    labels = {**speaker.labels, **SELECTOR_LABELS, **MANAGED_BY}
    metadata: dict[str, Any] = {
        "name": speaker.daemon_set_name,
        "namespace": settings.namespace,
        "labels": labels,
    }
    if owner is not None:
        metadata["ownerReferences"] = [
            {"apiVersion": owner.api_version, "kind": owner.kind, "name": owner.name, "uid": owner.uid}
        ]
    container: dict[str, Any] = {
        "name": "speaker",
        "image": speaker.image,
        "imagePullPolicy": speaker.image_pull_policy,
        "command": speaker_command(settings),
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            # Metrics listen on the node's own address, never 0.0.0.0: a VIP bound on
            # this node must not expose them (nor must any other address of the node).
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        ],
        "ports": [{"name": "metrics", "containerPort": speaker.metrics_port, "protocol": "TCP"}],
        # Ready while the speaker's configuration loop runs (/readyz turns 503 when it fails).
        # Deliberately no liveness probe: restarting a speaker would itself move VIPs.
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "metrics"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
        },
        "resources": speaker.resources,
        "securityContext": security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir, not the host's
            {"name": "state", "mountPath": speaker.state_dir},
        ],
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": speaker.service_account_name,
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "nodeSelector": speaker.node_selector,
        "tolerations": list(speaker.tolerations),
        "terminationGracePeriodSeconds": speaker.termination_grace_period_seconds,
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "state", "hostPath": {"path": speaker.state_dir, "type": "DirectoryOrCreate"}},
        ],
    }
    if speaker.priority_class_name:
        pod_spec["priorityClassName"] = speaker.priority_class_name
    if speaker.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in speaker.image_pull_secrets]
    template_metadata: dict[str, Any] = {"labels": labels}
    if speaker.annotations:
        template_metadata["annotations"] = speaker.annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": dict(SELECTOR_LABELS)},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": speaker.max_unavailable},
            },
            "template": {"metadata": template_metadata, "spec": pod_spec},
        },
    }
