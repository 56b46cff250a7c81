"""Where the local control plane's programs live, and a clear error when they do not.

The binaries are built once by ``hack/build-k8s.sh`` (kube-apiserver,
kube-controller-manager, kube-scheduler and kube-proxy v1.20.2 from Debian's source) and
``hack/get-helm.sh`` (helm), cached under ``~/.cache/keepvip``; etcd is Debian's
``etcd-server``. The harness never builds anything itself: a cluster that cannot start
must say which script to run rather than fail somewhere deep in a subprocess.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.20.2"


class BinariesMissingError(RuntimeError):
    """A program the local cluster needs is not installed; the message names the fix."""


def cache_dir() -> Path:
    """``~/.cache/keepvip`` (honours ``XDG_CACHE_HOME``), where the hack/ scripts install."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "keepvip"


def k8s_bin_dir() -> Path:
    """The directory holding the Kubernetes binaries (``K8S_BIN`` overrides)."""
    override = os.environ.get("K8S_BIN")
    if override:
        return Path(override)
    return cache_dir() / f"k8s-{K8S_VERSION}" / "bin"


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every program the harness starts."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kube_proxy: Path

    @classmethod
    def find(cls) -> Binaries:
        """Locate the programs or raise :class:`BinariesMissingError` saying how to get them."""
        bin_dir = k8s_bin_dir()
        paths = {name: bin_dir / name for name in
                 ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")}
        missing = [str(p) for p in paths.values() if not os.access(p, os.X_OK)]
        if missing:
            raise BinariesMissingError(
                "the local Kubernetes binaries are not built: missing "
                + ", ".join(missing)
                + ". Run `bash hack/build-k8s.sh` (about 5 minutes once, under a minute to add "
                "kube-proxy to an older cache; `make test` does it)."
            )
        etcd = os.environ.get("K8S_ETCD_BIN") or shutil.which("etcd") or ""
        if not etcd or not os.access(etcd, os.X_OK):
            raise BinariesMissingError(
                "etcd is not installed: run `bash hack/install-system-deps.sh` "
                "(Debian package etcd-server)."
            )
        return cls(
            etcd=Path(etcd),
            kube_apiserver=paths["kube-apiserver"],
            kube_controller_manager=paths["kube-controller-manager"],
            kube_scheduler=paths["kube-scheduler"],
            kube_proxy=paths["kube-proxy"],
        )


def find_helm() -> Path:
    """The helm binary installed by ``hack/get-helm.sh`` (``KEEPVIP_HELM`` overrides)."""
    override = os.environ.get("KEEPVIP_HELM")
    helm = Path(override) if override else cache_dir() / "helm" / "helm"
    if not os.access(helm, os.X_OK):
        raise BinariesMissingError(
            f"helm is not installed at {helm}: run `bash hack/get-helm.sh` "
            "(a few seconds; `make test` does it)."
        )
    return helm
