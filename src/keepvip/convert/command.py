"""``keepvip convert keepalived --node NAME=FILE ... [-o DIR]``.

Reads one keepalived.conf per node, writes the VirtualIP (and Secret) documents as one
YAML stream — usable by ``kubectl apply -f`` and by ``keepvip speaker --config`` on every
node alike, since per-node priorities are ``nodePriorities`` keyed by node name — and
the report. Without ``-o`` the documents go to stdout and the report to stderr; with
``-o DIR`` they are written to ``DIR/virtualips.yaml`` and ``DIR/report.txt``.
Exit status: 0 converted, 1 something was malformed or contradictory (the report says
where), 2 bad command line.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from keepvip.convert.join import join
from keepvip.convert.keepalived import read_node
from keepvip.convert.mapper import map_routers
from keepvip.convert.report import Outcome, Report
from keepvip.convert.syntax import parse_file

DOCUMENTS_FILE = "virtualips.yaml"
REPORT_FILE = "report.txt"
BAD_USAGE = 2


@dataclass(frozen=True)
class Conversion:
    """What a conversion produced."""

    documents: list[dict[str, Any]]
    report: Report

    def documents_text(self) -> str:
        """The YAML stream (empty when nothing converted)."""
        if not self.documents:
            return ""
        return yaml.safe_dump_all(self.documents, sort_keys=False, default_flow_style=False)


def convert_keepalived(nodes: list[tuple[str, Path]]) -> Conversion:
    """Convert one keepalived.conf per node (in the order given)."""
    report = Report()
    configs = []
    for node, path in nodes:
        configs.append(read_node(node, parse_file(path), report))
    routers = join(configs, report)
    documents = map_routers(routers, report)
    if not any(d["kind"] == "VirtualIP" for d in documents) and not report.failed:
        report.add(
            nodes[0][0] if nodes else "-",
            None,
            "vrrp_instance",
            Outcome.ERROR,
            "no vrrp_instance could be converted",
        )
    return Conversion(documents, report)


def run(args: argparse.Namespace) -> int:
    """Run ``keepvip convert``; the exit status."""
    if args.source != "keepalived":
        from keepvip.convert.balancers import run as convert_balancer  # noqa: PLC0415 - one tool's imports

        return convert_balancer(args)
    nodes: list[tuple[str, Path]] = args.nodes
    names = [n for n, _ in nodes]
    if len(set(names)) != len(names):
        print("keepvip convert: a node name is given twice", file=sys.stderr)
        return BAD_USAGE
    conversion = convert_keepalived(nodes)
    report = conversion.report.render()
    if args.output:
        directory = Path(args.output)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / DOCUMENTS_FILE).write_text(conversion.documents_text())
        (directory / REPORT_FILE).write_text(report)
        print(f"wrote {directory / DOCUMENTS_FILE} and {directory / REPORT_FILE}", file=sys.stderr)
        print(f"summary: {conversion.report.summary()}", file=sys.stderr)
    else:
        sys.stdout.write(conversion.documents_text())
        sys.stderr.write(report)
    return 1 if conversion.report.failed else 0
