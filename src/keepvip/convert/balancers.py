"""``keepvip convert metallb|kube-vip|cilium PATH... [--adopt] [-o DIR]``.

Reads the tool's objects (YAML files or folders, multi-document, ``kind: List`` as
``kubectl get -o yaml`` prints it) and, when given, the Services
(``kubectl get services -A -o yaml``), and writes:

* ``keepvip.yaml`` — the VirtualIPPools (and kube-vip's control-plane VirtualIP);
* ``services.yaml`` — one partial Service per Service that needs keepvip annotations,
  for ``kubectl apply --server-side``; ``annotate.sh`` says the same as ``kubectl annotate``;
* ``report.txt`` — every object and field: converted, or why not, with file:line:column.

Without ``-o`` every document goes to stdout (pools first, then Service patches) and the
report to stderr. Exit status 0, or 1 when something was malformed or contradictory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from keepvip.convert.cilium import DIALECT as CILIUM
from keepvip.convert.cilium import read_cilium
from keepvip.convert.kubevip import DIALECT as KUBEVIP
from keepvip.convert.kubevip import read_kubevip
from keepvip.convert.manifests import Manifest, load
from keepvip.convert.metallb import DIALECT as METALLB
from keepvip.convert.metallb import read_metallb
from keepvip.convert.plans import Notes, Plans
from keepvip.convert.render import documents, patch_document, script
from keepvip.convert.report import Outcome, Report
from keepvip.convert.services import Adopter, Dialect

DOCUMENTS_FILE = "keepvip.yaml"
SERVICES_FILE = "services.yaml"
SCRIPT_FILE = "annotate.sh"
REPORT_FILE = "report.txt"

Reader = Callable[[list[Manifest], Notes], tuple[Plans, dict[str, str]]]
TOOLS: dict[str, tuple[Reader, Dialect]] = {
    "metallb": (read_metallb, METALLB),
    "kube-vip": (read_kubevip, KUBEVIP),
    "cilium": (read_cilium, CILIUM),
}


def _dump(items: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(items, sort_keys=False, default_flow_style=False) if items else ""


@dataclass(frozen=True)
class Conversion:
    """What a conversion produced."""

    documents: list[dict[str, Any]]
    patches: list[dict[str, Any]]
    script: str
    report: Report

    def documents_text(self) -> str:
        """The pools and VirtualIPs as one YAML stream."""
        return _dump(self.documents)

    def patches_text(self) -> str:
        """The Service patches as one YAML stream."""
        return _dump(self.patches)


def convert(tool: str, paths: list[Path], adopt: bool = False) -> Conversion:
    """Convert ``tool``'s objects (and Services) read from ``paths``."""
    reader, dialect = TOOLS[tool]
    report = Report()
    notes = Notes(report)
    loaded = load(paths)
    for problem in loaded.problems:
        report.add("-", problem.location, "yaml", Outcome.ERROR, problem.detail)
    plans, pool_names = reader(loaded.manifests, notes)
    services = [m for m in loaded.manifests if m.kind == "Service" and m.api_group == ""]
    adopter = Adopter(dialect, plans.pools, pool_names, adopt, notes)
    adopted = adopter.run(services)
    if adopted is not None:
        plans.pools.append(adopted)
    plans.patches.extend(adopter.patches)
    emitted = documents(plans, notes)
    if not emitted and not plans.patches and not report.failed:
        report.add(
            "-", None, tool, Outcome.ERROR, f"nothing in the input converts: is it {tool}'s configuration?"
        )
    command = f"keepvip convert {tool}{' --adopt' if adopt else ''}"
    return Conversion(
        emitted, [patch_document(p) for p in plans.patches], script(plans.patches, command), report
    )


def run(args: argparse.Namespace) -> int:
    """Run ``keepvip convert metallb|kube-vip|cilium``; the exit status."""
    conversion = convert(args.source, [Path(p) for p in args.paths], adopt=args.adopt)
    report = conversion.report.render()
    if args.output:
        directory = Path(args.output)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / DOCUMENTS_FILE).write_text(conversion.documents_text())
        (directory / SERVICES_FILE).write_text(conversion.patches_text())
        (directory / SCRIPT_FILE).write_text(conversion.script)
        (directory / REPORT_FILE).write_text(report)
        written = ", ".join(
            str(directory / f) for f in (DOCUMENTS_FILE, SERVICES_FILE, SCRIPT_FILE, REPORT_FILE)
        )
        print(f"wrote {written}", file=sys.stderr)
        print(f"summary: {conversion.report.summary()}", file=sys.stderr)
    else:
        sys.stdout.write(_dump(conversion.documents + conversion.patches))
        sys.stderr.write(report)
    return 1 if conversion.report.failed else 0
