"""Where the keepvip source tree is: the chart and the examples the demo and tests use.

The development tools are installed apart from the product (their own distribution), so
they do not find the chart by walking up from their own file. The tree is named
explicitly (``--source`` of ``keepvip demo``, or ``$KEEPVIP_SOURCE``), else it is the
current directory, else the checkout this distribution is installed from (editable);
whichever is used must hold the chart, or the error says what to set.
"""

from __future__ import annotations

import os
from pathlib import Path

ENVIRONMENT = "KEEPVIP_SOURCE"
CHART = Path("charts") / "keepvip"
EXAMPLES = Path("examples")


class SourceTreeMissingError(RuntimeError):
    """No keepvip source tree (with charts/keepvip) where one was looked for."""


def is_source_tree(path: Path) -> bool:
    """A keepvip checkout: it has the chart and the examples."""
    return (path / CHART / "Chart.yaml").is_file() and (path / EXAMPLES).is_dir()


def _installed_from() -> Path:
    """The checkout an editable install of this distribution points into.

    This file is ``<checkout>/localcluster/src/keepvip/localcluster/source.py``.
    """
    return Path(__file__).resolve().parents[4]


def source_tree(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The keepvip source tree: ``explicit``, ``$KEEPVIP_SOURCE``, the cwd, the checkout."""
    named = explicit or os.environ.get(ENVIRONMENT)
    if named:
        path = Path(named).resolve()
        if not is_source_tree(path):
            raise SourceTreeMissingError(f"{path} (--source or ${ENVIRONMENT}) holds no {CHART}/Chart.yaml")
        return path
    for candidate in (Path.cwd(), _installed_from()):
        if is_source_tree(candidate):
            return candidate.resolve()
    raise SourceTreeMissingError(
        f"no keepvip source tree here: run from a checkout or set ${ENVIRONMENT} to one (it holds {CHART})"
    )


def chart(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The Helm chart's folder."""
    return source_tree(explicit) / CHART


def example(name: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """One file of ``examples/``."""
    return source_tree(explicit) / EXAMPLES / name
