"""The operator's settings: what the Helm chart decides, the operator obeys.

The chart renders these into a ConfigMap (key ``operator.yaml``) mounted into the
operator pod and passed as ``keepvip operator --settings FILE``. They say how to run the
speaker DaemonSet the operator owns and which allocation pools it hands out. One typed
model, so a chart value that the operator does not understand fails at start-up with
the field named, not later.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from keepvip.api.durations import parse_duration


class SettingsModel(BaseModel):
    """Base: camelCase keys (as in values.yaml), unknown keys refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ExecChecksSettings(SettingsModel):
    """Whether speakers run ``exec`` health checks, which programs, and as whom.

    Off by default: a program named in a VirtualIP would run on every selected node, in
    the host's network namespace, so writing a VirtualIP would mean running code on the
    nodes. When on, only absolute paths matching ``allowedCommands`` (glob patterns)
    run, as ``runAsUser``/``runAsGroup`` with no capabilities (docs/security.md).
    """

    enabled: bool = False
    allowed_commands: tuple[Annotated[str, Field(pattern=r"^/")], ...] = ()
    run_as_user: Annotated[int, Field(ge=1)] = 65534
    """Never root: root with the speaker's capabilities is exactly what this prevents."""
    run_as_group: Annotated[int, Field(ge=1)] = 65534


STATE_DIR_PATTERN = r"^(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)+$"
"""An absolute path whose components do not start with a dot (no ``..``), as in values.schema.json."""


class SpeakerSettings(SettingsModel):
    """How the operator renders the speaker DaemonSet."""

    daemon_set_name: str = "keepvip-speaker"
    service_account_name: str = "keepvip-speaker"
    image: str = "ghcr.io/keepvip/keepvip:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    command: tuple[str, ...] = ("keepvip",)
    """The entry point inside the image; the speaker subcommand and flags are appended."""
    node_selector: dict[str, str] = Field(default_factory=lambda: {"kubernetes.io/os": "linux"})
    tolerations: tuple[dict[str, Any], ...] = ()
    """None by default: a speaker (NET_ADMIN, NET_RAW, host network) runs only where
    ordinary workloads may; the chart's ``speaker.tolerateAllTaints`` opts in to every node."""
    priority_class_name: str | None = "system-node-critical"
    resources: dict[str, Any] = Field(
        default_factory=lambda: {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    )
    metrics_port: Annotated[int, Field(ge=1, le=65535)] = 9472
    log_format: str = "json"
    termination_grace_period_seconds: Annotated[int, Field(ge=2)] = 10
    max_unavailable: int | str = 1
    image_pull_secrets: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels for the DaemonSet and its pods."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Extra annotations for the speaker pods."""
    exec_checks: ExecChecksSettings = Field(default_factory=ExecChecksSettings)
    ownership_marker: Literal["auto", "proto", "state-file"] = "auto"
    """How speakers mark the VIPs they add (``keepvip speaker --ownership-marker``): the
    kernel's IFA_PROTO needs Linux >= 6.3; older kernels need the state file (issue 10)."""
    state_dir: Annotated[str, Field(pattern=STATE_DIR_PATTERN)] = "/var/lib/keepvip"
    """The node directory (hostPath) where the state-file marker keeps its list."""


class AllocationSettings(SettingsModel):
    """The pools the operator allocates (multicastGroup, vrid) pairs from.

    The default groups are unassigned addresses (docs/allocation.md explains the choice):
    IPv4 224.0.0.200-224.0.0.249 lies in the IANA "Local Network Control Block"'s
    unassigned 224.0.0.151-224.0.0.250 (RFC 5771 §4: never forwarded, flooded by IGMP
    snooping switches); IPv6 ff02::8000:0-ff02::8000:ff uses link-local group IDs from
    RFC 3307 §4.3's dynamic range (0x80000000-0xFFFFFFFF), which IANA never assigns.
    """

    vrid_first: Annotated[int, Field(ge=1, le=255)] = 1
    vrid_last: Annotated[int, Field(ge=1, le=255)] = 255
    ipv4_groups: tuple[str, ...] = ("224.0.0.200-224.0.0.249",)
    """IPv4 groups, each an address or a first-last range inside 224.0.0.0/24."""
    ipv6_groups: tuple[str, ...] = ("ff02::8000:0-ff02::8000:ff",)
    """IPv6 groups, each an address or a first-last range inside ff02::/16."""

    @model_validator(mode="after")
    def _ranges_are_sane(self) -> AllocationSettings:
        if self.vrid_first > self.vrid_last:
            raise ValueError("allocation.vridFirst must not exceed allocation.vridLast")
        for family, entries in ((4, self.ipv4_groups), (6, self.ipv6_groups)):
            for entry in entries:
                _check_group_range(family, entry)
        return self


def _check_group_range(family: int, entry: str) -> None:
    """One pool entry: link-local multicast of the right family, first <= last."""
    key = f"allocation.ipv{family}Groups"
    parts = [part.strip() for part in entry.split("-")]
    if len(parts) > 2:
        raise ValueError(f"{key}: {entry!r} is neither an address nor a first-last range")
    try:
        addresses = [ipaddress.ip_address(part) for part in parts]
    except ValueError as error:
        raise ValueError(f"{key}: {entry!r}: {error}") from None
    for address in addresses:
        if address.version != family:
            raise ValueError(f"{key}: {entry!r} is not IPv{family}")
        if family == 4 and address not in _LINK_LOCAL_V4:
            raise ValueError(f"{key}: {entry!r} must lie in 224.0.0.0/24 (link-local multicast)")
        if family == 6 and address not in _LINK_LOCAL_V6:
            raise ValueError(f"{key}: {entry!r} must lie in ff02::/16 (link-local multicast)")
    if int(addresses[0]) > int(addresses[-1]):
        raise ValueError(f"{key}: {entry!r}: the first address exceeds the last")


_LINK_LOCAL_V4 = ipaddress.ip_network("224.0.0.0/24")
_LINK_LOCAL_V6 = ipaddress.ip_network("ff02::/16")


DottedName = Annotated[str, Field(pattern=r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")]


class WebhookSettings(SettingsModel):
    """The validating admission webhook the operator serves (kopf-managed configuration)."""

    enabled: bool = True
    port: Annotated[int, Field(ge=1, le=65535)] = 9443
    listen_address: str = "0.0.0.0"  # noqa: S104 - a pod serves its Service on every interface
    """Where the webhook server listens."""
    service_name: str = "keepvip-webhook"
    """The Service (in ``namespace``) the API server calls: clientConfig.service."""
    service_port: Annotated[int, Field(ge=1, le=65535)] = 443
    """The Service's port that forwards to ``port``."""
    manage_configuration: bool = False
    """True: the operator creates and fills the ValidatingWebhookConfiguration
    ``configurationName`` (kopf-managed, emptied when the operator stops: fails open).
    False: the chart ships the configuration (path ``/validate-virtualip``)."""
    configuration_name: DottedName = "virtualips.keepvip.io"
    """The configuration's name when managed (dotted: the webhook inside is
    ``validate-virtualip.<configurationName>``)."""
    cert_dir: str | None = None
    """Directory with tls.crt and tls.key; absent: the operator makes a self-signed pair."""
    url: str | None = None
    """Point the API server at this URL instead of the Service (a webhook outside the cluster)."""


class StatusSettings(SettingsModel):
    """How the operator turns the speakers' entries into status and Events."""

    settle_seconds: Annotated[float, Field(ge=0, le=60)] = 2.0
    """How long a reading with no master, several masters or no backup must last before
    status and Events show it (a takeover passes through such readings for milliseconds;
    keepvip.operator.settle). 0 shows every reading."""


class LoadBalancerSettings(SettingsModel):
    """Serving ``Service type: LoadBalancer`` from VirtualIPPools (keepvip.operator.lb)."""

    enabled: bool = False
    """Watch Services and pools and allocate addresses."""
    default_class: bool = False
    """Also serve Services without spec.loadBalancerClass (class keepvip.io/vrrp is always served)."""
    reuse_delay: str = "0s"
    """How long a released address rests before another Service may take it (a pool's
    spec.reuseDelay overrides it); a Kubernetes duration such as 30s."""

    @model_validator(mode="after")
    def _duration(self) -> LoadBalancerSettings:
        try:
            parse_duration(self.reuse_delay)
        except ValueError as error:
            raise ValueError(f"loadBalancer.reuseDelay: {error}") from None
        return self

    @property
    def reuse_delay_value(self) -> timedelta:
        """reuseDelay as a timedelta."""
        return parse_duration(self.reuse_delay)


class OperatorSettings(SettingsModel):
    """Everything the operator needs besides its kubeconfig."""

    namespace: str = "keepvip-system"
    """Where the speaker DaemonSet and the allocation ledger live."""
    speaker: SpeakerSettings = Field(default_factory=SpeakerSettings)
    allocation: AllocationSettings = Field(default_factory=AllocationSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    status: StatusSettings = Field(default_factory=StatusSettings)
    load_balancer: LoadBalancerSettings = Field(default_factory=LoadBalancerSettings)
    metrics_port: Annotated[int, Field(ge=1, le=65535)] = 9473
    health_port: Annotated[int, Field(ge=1, le=65535)] = 9474
    """kopf's liveness endpoint: http://<pod>:<healthPort>/healthz."""
    deployment_name: str | None = "keepvip-operator"
    """The operator's own Deployment in ``namespace``: the speaker DaemonSet's owner, so
    uninstalling the chart garbage-collects the speakers. Absent or not found: no owner."""
    finalizer_timeout_seconds: Annotated[int, Field(ge=0)] = 30
    """How long deleting a VirtualIP waits for its master to let go before releasing."""
    resync_seconds: Annotated[int, Field(ge=5)] = 60
    """How often the DaemonSet is re-applied and stale ledger entries are collected."""
    peering_name: str | None = None
    """kopf peering (several replicas, needs kopf's ClusterKopfPeering CRD); absent: standalone."""


def load_settings(path: Path | None) -> OperatorSettings:
    """Read the settings file (the chart's ConfigMap); defaults when ``path`` is None."""
    if path is None:
        return OperatorSettings()
    data = yaml.safe_load(path.read_text()) or {}
    return OperatorSettings.model_validate(data)
