"""Run helm against the local cluster with its state kept out of the user's home.

helm keeps caches, repositories and plugins under the XDG directories; a test that
used the real ones would depend on (and change) whatever the machine's user has. The
runner points ``XDG_CACHE_HOME``/``XDG_CONFIG_HOME``/``XDG_DATA_HOME`` at a directory of
its own and ``KUBECONFIG`` at the cluster's admin kubeconfig.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from keepvip.localcluster.binaries import find_helm


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its output."""


class Helm:
    """``helm`` bound to one kubeconfig and one private state directory."""

    def __init__(self, kubeconfig: Path, state_dir: Path, binary: Path | None = None) -> None:
        self.binary = binary or find_helm()
        self.kubeconfig = kubeconfig
        self.state_dir = state_dir
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "XDG_CACHE_HOME": str(state_dir / "cache"),
            "XDG_CONFIG_HOME": str(state_dir / "config"),
            "XDG_DATA_HOME": str(state_dir / "data"),
            "HELM_NO_PLUGINS": "1",
        }

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """``helm <args>``; returns stdout, raises :class:`HelmError` on failure if ``check``."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([str(self.binary), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise HelmError(f"helm {' '.join(args)} exited {proc.returncode}:\n"
                            f"{proc.stdout}{proc.stderr}")
        return proc.stdout
