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
