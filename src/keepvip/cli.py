"""The one ``keepvip`` entry point: ``speaker``, ``operator``, ``crd``, ``demo``, ``convert``.

Each subcommand's implementation is imported lazily, so ``keepvip crd`` does not pay for
kopf or pyroute2, and a subcommand that is not built yet says so (exit status 2)
instead of failing with a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

NOT_AVAILABLE = 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keepvip",
        description="Kubernetes-native virtual IPs kept alive by VRRP.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    speaker = commands.add_parser("speaker", help="run the VRRP speaker on this node")
    source = speaker.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="standalone: a YAML stream of VirtualIP documents")
    source.add_argument("--kubernetes", action="store_true", help="watch VirtualIPs in the cluster")
    speaker.add_argument("--node", required=True, metavar="NAME", help="this node's name")
    speaker.add_argument(
        "--node-labels", default="", metavar="K=V,...", help="standalone: this node's labels"
    )
    speaker.add_argument("--metrics-address", metavar="HOST:PORT", help="serve Prometheus metrics here")
    speaker.add_argument(
        "--notify", metavar="CMD", help="run CMD INSTANCE NAME STATE PRIORITY on transitions"
    )
    speaker.add_argument(
        "--notify-timeout", type=float, default=30.0, metavar="SECONDS",
        help="kill the notify command (and its process group) after this long (default 30)",
    )
    speaker.add_argument(
        "--exec-checks", choices=("on", "off"),
        help="run exec health checks (default: on standalone, off with --kubernetes)",
    )
    speaker.add_argument(
        "--exec-allow", action="append", metavar="GLOB",
        help="exec checks may only run programs whose absolute path matches GLOB (repeatable; "
        "with --kubernetes none given means none allowed)",
    )
    speaker.add_argument(
        "--script-user", metavar="USER[:GROUP]",
        help="run exec checks and --notify as this user (default keepalived_script if it exists, "
        "else nobody; root only when named)",
    )
    speaker.add_argument(
        "--no-script-security", action="store_true",
        help="do not refuse programs and --config files that someone other than root could modify",
    )
    speaker.add_argument(
        "--garp-refresh",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="while master, repeat the announcements this often (0: never; ~100 beats a 300 s MAC aging)",
    )
    speaker.add_argument(
        "--ownership-marker", choices=("auto", "proto", "state-file"), default="auto",
        help="how the speaker marks the VIPs it adds, to remove them after a crash: IFA_PROTO "
        "(Linux >= 6.3), a state file plus the IPv4 label, or auto (by kernel, checked on the first VIP)",
    )
    speaker.add_argument(
        "--state-dir", default="/var/lib/keepvip", metavar="DIR",
        help="where the state-file marker keeps its list (default /var/lib/keepvip, a hostPath)",
    )
    speaker.add_argument(
        "--no-supervisor", dest="supervisor", action="store_false",
        help="run VRRP in this process, without the parent that removes its VIPs the moment "
        "it is killed (for debuggers and profilers)",
    )
    speaker.add_argument("--log-format", choices=("text", "json"), default="text")
    speaker.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    operator = commands.add_parser("operator", help="run the kopf operator")
    operator.add_argument("--settings", metavar="FILE", help="the chart's operator settings (operator.yaml)")
    operator.add_argument("--namespace", metavar="NS", help="override the settings' namespace")
    operator.add_argument("--metrics-address", metavar="HOST:PORT")
    operator.add_argument("--log-format", choices=("text", "json"), default="text")
    operator.add_argument("--verbose", action="store_true", help="kopf debug logs")

    crd = commands.add_parser("crd", help="print the VirtualIP (or VirtualIPPool) CustomResourceDefinition")
    crd.add_argument(
        "--kind",
        choices=("VirtualIP", "VirtualIPPool", "all"),
        default="VirtualIP",
        help="which CRD; all: both, as one YAML stream",
    )

    convert = commands.add_parser(
        "convert", help="turn a keepalived, MetalLB, kube-vip or Cilium setup into keepvip resources"
    )
    from keepvip.convert.arguments import add_arguments  # noqa: PLC0415 - standard library only

    add_arguments(convert)

    demo = commands.add_parser("demo", help="the local demonstration (root)")
    demo.add_argument("--standalone", action="store_true", help="run without the local Kubernetes cluster")
    demo.add_argument("--interactive", action="store_true", help="wait for Enter between acts")
    demo.add_argument(
        "--source",
        metavar="DIR",
        help="the keepvip source tree whose chart and examples/ the demo uses "
        "(default: $KEEPVIP_SOURCE, else the current directory, else the tools' own checkout)",
    )
    return parser


# What to say when a subcommand's module is not installed. The demo runs on the
# development tools (keepvip-localcluster), which are not part of the product.
_MISSING = {
    "demo": "needs keepvip's development tools, which are not installed: from a keepvip "
    "checkout run `make venv` (or `pip install -e ./localcluster`)",
}

# subcommand -> module whose `run(args) -> int` implements it
_COMMANDS = {
    "speaker": "keepvip.speaker.entry",
    "operator": "keepvip.operator.main",
    "demo": "keepvip.localcluster.demo",
    "convert": "keepvip.convert.command",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the subcommand; return the exit status."""
    args = _build_parser().parse_args(argv)
    if args.command == "crd":
        from keepvip.api.crd import render_crd  # noqa: PLC0415 - keep `keepvip crd` light
        from keepvip.api.pool_crd import render_pool_crd  # noqa: PLC0415

        kind = getattr(args, "kind", "VirtualIP")
        parts = [render_crd()] if kind in ("VirtualIP", "all") else []
        parts += [render_pool_crd()] if kind in ("VirtualIPPool", "all") else []
        sys.stdout.write("---\n".join(parts))
        return 0
    module_name = _COMMANDS[args.command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            missing = _MISSING.get(args.command, "not available yet in this version")
            print(f"keepvip {args.command}: {missing}", file=sys.stderr)
            return NOT_AVAILABLE
        raise
    status: int = module.run(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
