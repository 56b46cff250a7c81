"""What the chart's tests share: where the chart is, and helm.

The helm runner itself (private XDG directories, ``helm template`` parsed into
:class:`Rendered`) is the one in :mod:`keepvip.localcluster.helm`, which the cluster
tests, the demo and bench/ use too; it is re-exported here for the chart's unit tests.
helm is installed by ``hack/get-helm.sh`` into ``~/.cache/keepvip/helm/helm`` (``make
test`` runs it first); a missing binary fails with that instruction.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keepvip.localcluster.helm import Helm, HelmError, Rendered

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "keepvip"
JSON = dict[str, Any]


def nested(dotted: Mapping[str, Any]) -> JSON:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (values paths are dotted chart keys)."""
    out: JSON = {}
    for path, value in dotted.items():
        node = out
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


__all__ = ["CHART", "JSON", "ROOT", "Helm", "HelmError", "Rendered", "nested"]
