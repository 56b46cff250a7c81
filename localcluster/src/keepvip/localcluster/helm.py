"""The one helm runner: the chart's unit tests (``helm template``), the cluster tests,
the demo and bench/ (``helm install``) all use it.

helm keeps caches, repositories and plugins under the XDG directories; a test that used
the real ones would depend on (and change) whatever the machine's user has. Every
:class:`Helm` points ``XDG_CACHE_HOME``/``XDG_CONFIG_HOME``/``XDG_DATA_HOME`` at a
directory of its own, inherits no ``HELM_*`` or ``KUBECONFIG`` setting, and talks to the
cluster whose kubeconfig it is given (none: ``helm template`` and ``helm lint`` only).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from keepvip.localcluster.binaries import find_helm
from keepvip.localcluster.source import chart

JSON = dict[str, Any]


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its output, ``stderr`` its complaint."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} exited {returncode}:\n{stdout}{stderr}")
        self.stdout = stdout
        self.stderr = stderr


class Helm:
    """``helm`` bound to one private state directory and (optionally) one kubeconfig."""

    def __init__(self, kubeconfig: Path | None, state_dir: Path, binary: Path | None = None) -> None:
        self.binary = binary or find_helm()
        self.kubeconfig = kubeconfig
        self.state_dir = state_dir

    @classmethod
    def find(cls, home: Path, kubeconfig: Path | None = None) -> Helm:
        """The installed helm (``hack/get-helm.sh``), or BinariesMissingError saying how to get it."""
        return cls(kubeconfig, home)

    def env(self) -> dict[str, str]:
        """The environment helm runs with: private XDG dirs, no inherited helm settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECONFIG"))}
        env.update(
            XDG_CACHE_HOME=str(self.state_dir / "cache"),
            XDG_CONFIG_HOME=str(self.state_dir / "config"),
            XDG_DATA_HOME=str(self.state_dir / "data"),
            HELM_NO_PLUGINS="1",
        )
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """``helm <args>``; returns stdout, raises :class:`HelmError` on failure if ``check``."""
        for sub in ("cache", "config", "data"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([str(self.binary), *args], env=self.env(), capture_output=True,
                              text=True, timeout=timeout, check=False)  # fmt: skip
        if check and proc.returncode != 0:
            raise HelmError(args, proc.returncode, proc.stdout, proc.stderr)
        return proc.stdout

    def values_file(self, values: Mapping[str, Any], name: str = "values") -> Path:
        """Write ``values`` as a values file in this helm's state directory; return its path."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / f"{name}.yaml"
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
        """``helm template`` keepvip's chart with ``values``; the parsed documents."""
        args = ["template", release, str(chart()), "--namespace", namespace, *extra]
        if values:
            args += ["--values", str(self.values_file(values))]
        return Rendered.parse(self.run(*args))


@dataclass(frozen=True)
class Rendered:
    """The documents of one ``helm template`` run, with the lookups tests need."""

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
