"""Run the real helm binary against charts/keepvip and read what it renders.

Shared by the chart's unit tests (``helm lint``/``helm template``, no cluster) and its
cluster tests (``helm install``/``upgrade``/``uninstall``). helm keeps a cache, a
config and a plugin directory; every :class:`Helm` gets its own, under a temporary
directory, so tests never read or write the user's ``~/.config/helm``.

helm itself is installed by ``hack/get-helm.sh`` into ``~/.cache/keepvip/helm/helm``
(``make test`` runs it first); a missing binary fails the test with that instruction.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "keepvip"
JSON = dict[str, Any]


def helm_path() -> Path:
    """Where hack/get-helm.sh installs helm (``KEEPVIP_HELM`` overrides)."""
    override = os.environ.get("KEEPVIP_HELM")
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "keepvip" / "helm" / "helm"


class HelmError(RuntimeError):
    """helm exited non-zero; ``stderr`` holds its message."""

    def __init__(self, args: Sequence[str], stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} failed:\n{stderr}")
        self.stderr = stderr


@dataclass(frozen=True)
class Helm:
    """A helm binary with private XDG directories (and optionally a kubeconfig)."""

    binary: Path
    home: Path
    kubeconfig: Path | None = None

    @classmethod
    def find(cls, home: Path, kubeconfig: Path | None = None) -> Helm:
        """The installed helm, or a test failure saying how to install it."""
        binary = helm_path()
        if not os.access(binary, os.X_OK):
            pytest.fail(
                f"helm is not installed at {binary}: run `bash hack/get-helm.sh` "
                "(a few seconds; `make test` does it first)",
                pytrace=False,
            )
        for sub in ("cache", "config", "data"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        return cls(binary=binary, home=home, kubeconfig=kubeconfig)

    def env(self) -> dict[str, str]:
        """The environment helm runs with: private XDG dirs, no inherited KUBECONFIG."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECONFIG"))}
        env.update(
            XDG_CACHE_HOME=str(self.home / "cache"),
            XDG_CONFIG_HOME=str(self.home / "config"),
            XDG_DATA_HOME=str(self.home / "data"),
        )
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def run(self, *args: str, timeout: float = 120) -> str:
        """Run ``helm ARGS``; return stdout or raise :class:`HelmError` with stderr."""
        proc = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=self.env(),
            timeout=timeout, check=False,
        )
        if proc.returncode != 0:
            raise HelmError(args, proc.stderr)
        return proc.stdout

    def values_file(self, values: Mapping[str, Any], name: str = "values") -> Path:
        """Write ``values`` as a values file in this helm's home; return its path."""
        path = self.home / f"{name}.yaml"
        path.write_text(yaml.safe_dump(dict(values), sort_keys=False))
        return path

    def template(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        release: str = "keepvip",
        namespace: str = "keepvip-system",
        extra: Iterable[str] = (),
    ) -> Rendered:
        """``helm template`` the chart with ``values``; the parsed documents."""
        args = ["template", release, str(CHART), "--namespace", namespace, *extra]
        if values:
            args += ["--values", str(self.values_file(values))]
        return Rendered.parse(self.run(*args))


@dataclass(frozen=True)
class Rendered:
    """The documents of one ``helm template`` run, with lookups tests need."""

    docs: tuple[JSON, ...]

    @classmethod
    def parse(cls, text: str) -> Rendered:
        return cls(tuple(d for d in yaml.safe_load_all(text) if d))

    def of_kind(self, kind: str) -> list[JSON]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> JSON:
        """The single object of ``kind`` whose name ends with ``name_suffix``."""
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {len(found)}"
        return found[0]

    def has(self, kind: str) -> bool:
        return bool(self.of_kind(kind))

    def settings(self) -> JSON:
        """The operator's settings file (ConfigMap key operator.yaml), parsed."""
        data: JSON = yaml.safe_load(self.one("ConfigMap", "-operator-settings")["data"]["operator.yaml"])
        return data

    def operator_pod(self) -> JSON:
        """The operator Deployment's pod spec."""
        spec: JSON = self.one("Deployment", "-operator")["spec"]["template"]["spec"]
        return spec

    def operator_container(self) -> JSON:
        containers = self.operator_pod()["containers"]
        assert len(containers) == 1
        container: JSON = containers[0]
        return container


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
