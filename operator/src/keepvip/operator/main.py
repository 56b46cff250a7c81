"""``keepvip operator``: load the settings, build the operator, run kopf until stopped.

Called by :mod:`keepvip.cli` with its parsed arguments. Flags the CLI may not define
yet are read with defaults, and the settings file falls back to the environment
variable ``KEEPVIP_OPERATOR_SETTINGS``.

One replica runs standalone (the default): the allocation ledger's compare-and-swap
keeps pairs unique even while two replicas overlap during a rolling update, and every
stage is idempotent. Several replicas use kopf peering (``peeringName``; the chart
then installs kopf's ClusterKopfPeering CRD and object): the oldest replica handles,
the others serve the webhook and wait (keepvip.operator.peering).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import kopf

from keepvip.operator import metrics, peering, rewatch
from keepvip.operator.handlers import register
from keepvip.operator.kube import Kube, load_configuration
from keepvip.operator.reconcile import Context
from keepvip.operator.settings import OperatorSettings, load_settings
from keepvip.operator.webhook import webhook_server

SETTINGS_ENV = "KEEPVIP_OPERATOR_SETTINGS"
log = logging.getLogger(__name__)


def settings_from_args(args: argparse.Namespace) -> OperatorSettings:
    """The settings file (flag, else environment, else defaults) with flag overrides."""
    path = getattr(args, "settings", None) or os.environ.get(SETTINGS_ENV)
    settings = load_settings(Path(path) if path else None)
    namespace = getattr(args, "namespace", None)
    if namespace:
        settings = settings.model_copy(update={"namespace": namespace})
    return settings


def split_address(text: str | None, default_port: int) -> tuple[str, int]:
    """HOST:PORT (IPv6 hosts in brackets); the default: every interface, ``default_port``."""
    if not text:
        return "0.0.0.0", default_port  # noqa: S104 - the pod's metrics port
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104


def run(args: argparse.Namespace) -> int:
    """Run the operator until SIGTERM/SIGINT; the exit status."""
    settings = settings_from_args(args)
    log_format = getattr(args, "log_format", "text")
    kopf.configure(
        verbose=bool(getattr(args, "verbose", False)),
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN,
    )
    metrics_host, metrics_port = split_address(getattr(args, "metrics_address", None), settings.metrics_port)
    metrics.serve(metrics_host, metrics_port)
    load_configuration()
    rewatch.install()  # a restarting API server's 404 on a watch is transient (keepvip.operator.rewatch)
    ctx = Context(settings, Kube(settings))
    registry = kopf.OperatorRegistry()
    with tempfile.TemporaryDirectory(prefix="keepvip-webhook-") as scratch:
        webhook = webhook_server(settings, Path(scratch)) if settings.webhook.enabled else None
        register(registry, ctx, webhook)
        log.info("namespace %s, metrics on %s:%d", settings.namespace, metrics_host, metrics_port)
        kopf.run(
            registry=registry,
            clusterwide=True,
            liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
            **peering_options(settings.peering_name),
        )
    return 0


def peering_options(peering_name: str | None) -> dict[str, Any]:
    """kopf.run's peering arguments: standalone, or this replica's place among its peers."""
    if peering_name is None:
        return {"standalone": True}
    kopf_settings = kopf.OperatorSettings()
    kopf_settings.peering.lifetime = peering.LIFETIME_SECONDS
    priority = peering.own_priority()
    identity = peering.own_identity()
    log.info("kopf peering %r as %s, priority %d", peering_name, identity or "(kopf's id)", priority)
    return {
        "standalone": False,
        "peering_name": peering_name,
        "priority": priority,
        "settings": kopf_settings,
        **({"identity": identity} if identity else {}),
    }
