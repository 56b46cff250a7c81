"""The ``keepvip convert`` command line, kept free of heavy imports.

``keepvip``'s parser is built for every subcommand, so this module imports only the
standard library; the conversion itself (:mod:`keepvip.convert.command`) is imported
lazily, when ``convert`` runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _node_argument(text: str) -> tuple[str, Path]:
    name, separator, file = text.partition("=")
    if not separator or not name or not file:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write NAME=FILE, e.g. node1=/etc/keepalived/keepalived.conf"
        )
    return name, Path(file)


_BALANCERS = {
    "metallb": "MetalLB IPAddressPool/L2Advertisement or its config ConfigMap",
    "kube-vip": "kube-vip's DaemonSet/static pod and its cloud-provider ConfigMap",
    "cilium": "CiliumLoadBalancerIPPool and CiliumL2AnnouncementPolicy",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``convert`` subcommand's arguments."""
    sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    keepalived = sources.add_parser("keepalived", help="one keepalived.conf per node → VirtualIPs")
    keepalived.add_argument(
        "--node",
        dest="nodes",
        action="append",
        required=True,
        type=_node_argument,
        metavar="NAME=FILE",
        help="a node name (as `keepvip speaker --node` or the Kubernetes node name) and its keepalived.conf",
    )
    keepalived.add_argument("-o", "--output", metavar="DIR", help="write virtualips.yaml and report.txt here")
    for tool, what in _BALANCERS.items():
        balancer = sources.add_parser(tool, help=f"{what} → VirtualIPPools (+ Service annotations)")
        balancer.add_argument(
            "paths", nargs="+", metavar="PATH",
            help="YAML files or folders: the tool's objects, and optionally the Services "
            "(kubectl get services -A -o yaml)",
        )  # fmt: skip
        balancer.add_argument(
            "--adopt", action="store_true",
            help="pin every LoadBalancer Service to the address it holds now, so the switch changes none",
        )  # fmt: skip
        balancer.add_argument(
            "-o",
            "--output",
            metavar="DIR",
            help="write keepvip.yaml, services.yaml, annotate.sh and report.txt here",
        )
