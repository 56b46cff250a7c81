"""The operator's settings: what the Helm chart decides, the operator obeys.

The chart renders these into a ConfigMap (key ``operator.yaml``) mounted into the
operator pod and passed as ``keepvip operator --settings FILE``. They say how to run the
speaker DaemonSet the operator owns and which allocation pools it hands out. One typed
model, so a chart value that the operator does not understand fails at start-up with
the field named, not later.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class SettingsModel(BaseModel):
    """Base: camelCase keys (as in values.yaml), unknown keys refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class SpeakerSettings(SettingsModel):
    """How the operator renders the speaker DaemonSet."""

    daemon_set_name: str = "keepvip-speaker"
    service_account_name: str = "keepvip-speaker"
    image: str = "ghcr.io/keepvip/keepvip:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    command: tuple[str, ...] = ("keepvip",)
    """The entry point inside the image; the speaker subcommand and flags are appended."""
    node_selector: dict[str, str] = Field(default_factory=lambda: {"kubernetes.io/os": "linux"})
    tolerations: tuple[dict[str, Any], ...] = ({"operator": "Exists"},)
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


class AllocationSettings(SettingsModel):
    """The pools the operator allocates (multicastGroup, vrid) pairs from."""

    vrid_first: Annotated[int, Field(ge=1, le=255)] = 1
    vrid_last: Annotated[int, Field(ge=1, le=255)] = 255
    ipv4_groups: tuple[str, ...] = ("224.0.0.18",)
    """IPv4 groups, each an address or a first-last range inside 224.0.0.0/24."""
    ipv6_groups: tuple[str, ...] = ("ff02::12",)
    """IPv6 groups, each an address or a first-last range inside ff02::/16."""

    @model_validator(mode="after")
    def _ranges_are_sane(self) -> AllocationSettings:
        if self.vrid_first > self.vrid_last:
            raise ValueError("allocation.vridFirst must not exceed allocation.vridLast")
        for entry in (*self.ipv4_groups, *self.ipv6_groups):
            for part in entry.split("-"):
                if not ipaddress.ip_address(part.strip()).is_multicast:
                    raise ValueError(f"allocation group {entry!r} is not multicast")
        return self


class WebhookSettings(SettingsModel):
    """The validating admission webhook the operator serves."""

    enabled: bool = True
    port: Annotated[int, Field(ge=1, le=65535)] = 9443
    service_name: str = "keepvip-webhook"
    cert_dir: str | None = None
    """Directory with tls.crt and tls.key; absent: the operator makes a self-signed pair."""
    url: str | None = None
    """Point the API server at this URL instead of the Service (a webhook outside the cluster)."""


class OperatorSettings(SettingsModel):
    """Everything the operator needs besides its kubeconfig."""

    namespace: str = "keepvip-system"
    """Where the speaker DaemonSet and the allocation ledger live."""
    speaker: SpeakerSettings = Field(default_factory=SpeakerSettings)
    allocation: AllocationSettings = Field(default_factory=AllocationSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    metrics_port: Annotated[int, Field(ge=1, le=65535)] = 9473


def load_settings(path: Path | None) -> OperatorSettings:
    """Read the settings file (the chart's ConfigMap); defaults when ``path`` is None."""
    if path is None:
        return OperatorSettings()
    data = yaml.safe_load(path.read_text()) or {}
    return OperatorSettings.model_validate(data)
