"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler as child processes.

The flags follow ../shared/reference/local-control-plane.md (measured on v1.20.2), plus
what keepvip needs on top of that reference:

* the API server binds the root namespace's LAN address, so node namespaces reach it
  like real nodes do, and advertises it (the ``kubernetes`` Endpoints hold it);
* ``--enable-aggregator-routing=true``: kube-proxy runs only in the node namespaces,
  not in the root one where the API server runs, so Service-referenced admission
  webhooks work only if the API server dials the Service's endpoints directly;
* the controller manager's ``--node-monitor-grace-period`` is long (24 h), because the
  harness's Nodes have no kubelet heartbeat; a test marks a node NotReady explicitly.

Each process logs to ``<run>/logs/<name>.log``; :class:`ControlPlane` stops them in
reverse order by pid. The API server can be stopped and started again on its own (etcd
keeps the data), to test what keepvip does while the API is away.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from keepvip.localcluster.binaries import Binaries
from keepvip.localcluster.pki import ADMIN_TOKEN, SERVICE_ACCOUNT_ISSUER, SERVICE_CIDR, Pki
from keepvip.localcluster.procs import ChildProcess


class ControlPlaneError(RuntimeError):
    """A component did not start; the message carries the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class ControlPlane:
    """Starts and stops the four control-plane programs of one run."""

    def __init__(self, binaries: Binaries, pki: Pki, run_dir: Path, bind_address: str,
                 *, api_port: int = 6443, node_monitor_grace: str = "24h") -> None:
        self.binaries = binaries
        self.pki = pki
        self.run_dir = run_dir
        self.bind_address = bind_address
        self.api_port = api_port
        self.node_monitor_grace = node_monitor_grace
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        logs = run_dir / "logs"
        self.etcd = ChildProcess("etcd", self._etcd_argv(), logs / "etcd.log")
        self.apiserver = ChildProcess("kube-apiserver", self._apiserver_argv(),
                                      logs / "kube-apiserver.log")
        self.controller_manager = ChildProcess(
            "kube-controller-manager", self._kcm_argv(), logs / "kube-controller-manager.log")
        self.scheduler = ChildProcess("kube-scheduler", self._scheduler_argv(),
                                      logs / "kube-scheduler.log")

    @property
    def server_url(self) -> str:
        """``https://<LAN address>:<port>``: the URL every client uses."""
        return f"https://{self.bind_address}:{self.api_port}"

    # -- argv ------------------------------------------------------------------------
    def _etcd_argv(self) -> list[str]:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        return [
            str(self.binaries.etcd), "--name", "keepvip",
            "--data-dir", str(self.run_dir / "etcd-data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"keepvip={peer}", "--unsafe-no-fsync=true",
        ]

    def _apiserver_argv(self) -> list[str]:
        p = self.pki.path
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--bind-address={self.bind_address}", f"--advertise-address={self.bind_address}",
            f"--secure-port={self.api_port}", "--insecure-port=0",
            f"--tls-cert-file={p('apiserver.crt')}", f"--tls-private-key-file={p('apiserver.key')}",
            f"--client-ca-file={p('ca.crt')}", f"--token-auth-file={p('tokens.csv')}",
            f"--requestheader-client-ca-file={p('ca.crt')}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={p('front-proxy-client.crt')}",
            f"--proxy-client-key-file={p('front-proxy-client.key')}",
            "--enable-aggregator-routing=true",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={p('sa.pub')}",
            f"--service-account-signing-key-file={p('sa.key')}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
            "--profiling=false", "--v=1",
        ]

    def _kcm_argv(self) -> list[str]:
        kc = self.pki.path("kcm.kubeconfig")
        return [
            str(self.binaries.kube_controller_manager), f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.pki.path('sa.key')}",
            f"--root-ca-file={self.pki.ca_cert}", "--controllers=*",
            f"--node-monitor-grace-period={self.node_monitor_grace}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0", "--port=0",
            "--v=1",
        ]

    def _scheduler_argv(self) -> list[str]:
        kc = self.pki.path("scheduler.kubeconfig")
        return [
            str(self.binaries.kube_scheduler), f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0", "--port=0",
            "--v=1",
        ]

    # -- life cycle ------------------------------------------------------------------
    def start(self, timeout: float = 60.0, on_started: Callable[[], None] | None = None) -> None:
        """Start all four and wait until etcd is healthy and the API server is ready.

        The controller manager and the scheduler start once the API server is ready
        (started earlier they back off and come up later, measured). ``on_started`` is
        called after each start (the run record wants the pids).
        """
        self.etcd.start()
        if on_started is not None:
            on_started()
        self._wait(self.etcd, self._etcd_healthy, timeout)
        self.apiserver.start()
        if on_started is not None:
            on_started()
        self._wait(self.apiserver, self.apiserver_ready, timeout)
        self.controller_manager.start()
        self.scheduler.start()
        if on_started is not None:
            on_started()

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """Start the API server (again) and wait for ``/readyz``."""
        self.apiserver.start()
        self._wait(self.apiserver, self.apiserver_ready, timeout)

    def stop_apiserver(self, grace: float = 1.0) -> None:
        """Stop only the API server; everything else keeps running.

        With open watches (controllers, kubelet) a graceful shutdown drags on for
        seconds; what tests simulate is an API server that is gone, so it gets only
        ``grace`` seconds before SIGKILL.
        """
        self.apiserver.stop(grace=grace)

    def stop(self) -> None:
        """Stop everything, newest first. Safe to call more than once."""
        for proc in (self.scheduler, self.controller_manager, self.apiserver, self.etcd):
            proc.stop(grace=5)

    def _wait(self, proc: ChildProcess, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if not proc.alive():
                raise ControlPlaneError(
                    f"{proc.name} exited with {proc.poll()}; tail of {proc.log_path}:\n"
                    + proc.log_tail())
            time.sleep(0.1)
        raise ControlPlaneError(f"{proc.name} not ready after {timeout} s; tail of "
                                f"{proc.log_path}:\n{proc.log_tail()}")

    def _etcd_healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.etcd_port}/health"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            return b'"true"' in r.read()
        return False

    def apiserver_ready(self) -> bool:
        """True when ``GET /readyz`` answers ``ok``."""
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        req = urllib.request.Request(f"{self.server_url}/readyz",  # noqa: S310
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        with contextlib.suppress(OSError, urllib.error.URLError), \
                urllib.request.urlopen(req, timeout=2, context=ctx) as r:  # noqa: S310
            return bool(r.read() == b"ok")
        return False
