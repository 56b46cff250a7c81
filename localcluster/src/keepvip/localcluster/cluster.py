"""The local cluster: control plane, LAN, nodes, process kubelet and kube-proxy, started
and stopped as one object.

    from keepvip.localcluster import LocalCluster, ClusterConfig

    with LocalCluster(ClusterConfig(nodes=("node-a", "node-b", "node-c"))) as cluster:
        core = kubernetes.client.CoreV1Api(cluster.api_client())
        ...

Everything the cluster starts is stopped by pid when the ``with`` block ends, on an
exception, on Ctrl-C, on SIGTERM and at interpreter exit; a run killed outright is
cleaned up by the next one (:mod:`keepvip.localcluster.janitor`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes import client, config

from keepvip.localcluster import janitor, nodes
from keepvip.localcluster.binaries import Binaries
from keepvip.localcluster.controlplane import ControlPlane
from keepvip.localcluster.helm import Helm
from keepvip.localcluster.kubelet import NodeHandle, ProcessKubelet
from keepvip.localcluster.kubeproxy import KubeProxies, NodeProxy, iptables_save
from keepvip.localcluster.lan import IPInterface, Lan, netns_addresses, run
from keepvip.localcluster.objects import Objects
from keepvip.localcluster.pki import Pki, generate_pki
from keepvip.localcluster.procs import install_exit_safety

log = logging.getLogger(__name__)

DEFAULT_NODES = ("node-a", "node-b", "node-c")


@dataclass(frozen=True)
class ClusterConfig:
    """How to build a cluster. Every field has a default that suits the tests."""

    nodes: Sequence[str] = DEFAULT_NODES
    """Names of the nodes created at start (each a network namespace)."""
    node_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Extra labels per node name."""
    workdir: Path | None = None
    """Where PKI, logs, etcd data and pod files go; a temporary directory (removed at
    stop) when ``None``. A given directory is kept (logs for debugging)."""
    api_port: int = 6443
    """The API server's port on its LAN address (unique per run, so no clash)."""
    subnet_index: int | None = None
    """``k`` of the LAN 198.19.k.0/24; the first free one when ``None``."""
    start_timeout: float = 90.0
    kube_proxy: bool = True
    """Run kube-proxy in every node namespace. ``False`` leaves Services without any data
    path (nothing answers a ClusterIP, NodePort or VIP port): only for benchmarks of the
    API side that would otherwise also measure three kube-proxies rewriting iptables."""


@dataclass(frozen=True)
class ClusterNode:
    """One node: a Node object and the network namespace its pods run in."""

    name: str
    netns: str
    ipv4: ipaddress.IPv4Interface
    ipv6: ipaddress.IPv6Interface
    interface: str = "eth0"


class LocalCluster:
    """A real Kubernetes control plane whose nodes are network namespaces on one LAN."""

    def __init__(self, cfg: ClusterConfig | None = None) -> None:
        self.config = cfg or ClusterConfig()
        self.prefix = "kv" + secrets.token_hex(3)
        self._own_workdir = self.config.workdir is None
        self.workdir = (Path(tempfile.mkdtemp(prefix=f"keepvip-{self.prefix}-"))
                        if self.config.workdir is None else self.config.workdir)
        self.lan = Lan(self.prefix, self.config.subnet_index)
        self.nodes: dict[str, ClusterNode] = {}
        self._record = janitor.RunRecord(self.prefix)
        self._control_plane: ControlPlane | None = None
        self._kubelet: ProcessKubelet | None = None
        self._proxies: KubeProxies | None = None
        self._pki: Pki | None = None
        self._api: client.ApiClient | None = None
        self._objects: Objects | None = None
        self.start_seconds = 0.0
        self.kube_proxy_seconds = 0.0
        """From starting the first node's kube-proxy until every one has synced once."""

    # -- life cycle -----------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> LocalCluster:
        """Build the LAN, start the control plane, register the nodes, start the kubelet."""
        t0 = time.monotonic()
        binaries = Binaries.find()
        install_exit_safety()
        janitor.clean_stale_runs()
        self._record.save()
        try:
            self._start(binaries)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        log.info("local cluster %s up in %.1f s (kube-proxies synced after %.1f s): %s",
                 self.prefix, self.start_seconds, self.kube_proxy_seconds, self.server_url)
        return self

    def _start(self, binaries: Binaries) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.lan.create()
        self._record.data["host_device"] = self.lan.host_device
        self._save_record()
        host = str(self.lan.host_address)
        server = f"https://{host}:{self.config.api_port}"
        self._pki = generate_pki(self.workdir / "pki", server, [self.lan.host_address])
        self._control_plane = ControlPlane(binaries, self._pki, self.workdir, host,
                                           api_port=self.config.api_port)
        self._control_plane.start(self.config.start_timeout, on_started=self._save_record)
        self._kubelet = ProcessKubelet(self.api_client(), self.workdir / "pods", host,
                                       self.config.api_port)
        self._kubelet.start()
        if self.config.kube_proxy:
            self._proxies = KubeProxies(binaries.kube_proxy, self._pki.kube_proxy_kubeconfig,
                                        self.workdir / "logs")
        proxies_started = time.monotonic()
        for name in self.config.nodes:
            self._add_node(name, self.config.node_labels.get(name, {}))
        nodes.wait_schedulable(self.core, list(self.config.nodes))
        self.wait_for_service_account("default")
        if self._proxies is None:
            return
        rest_ready = time.monotonic()
        self._proxies.wait(list(self.config.nodes), self.config.start_timeout)
        self.kube_proxy_seconds = time.monotonic() - proxies_started
        log.info("kube-proxies synced %.1f s after the first started; the start waited %.1f s "
                 "more for them", self.kube_proxy_seconds, time.monotonic() - rest_ready)

    def stop(self) -> None:
        """Stop pods, control plane and LAN; remove the workdir if it is ours. Idempotent."""
        if self._kubelet is not None:
            self._kubelet.stop(grace=1.0)
            self._kubelet = None
        if self._proxies is not None:
            self._proxies.stop_all()
            self._proxies = None
        janitor.kill_namespace_processes(self.lan.namespaces())
        if self._control_plane is not None:
            self._control_plane.stop()
            self._control_plane = None
        if self._api is not None:
            with contextlib.suppress(Exception):
                self._api.close()
            self._api = None
        self._objects = None
        self.lan.close()
        self.nodes.clear()
        self._record.remove()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)

    def _save_record(self) -> None:
        procs = []
        if self._control_plane is not None:
            cp = self._control_plane
            for p in (cp.etcd, cp.apiserver, cp.controller_manager, cp.scheduler):
                if p.pid is not None and (ident := janitor.process_identity(p.pid)):
                    procs.append(ident)
        if self._proxies is not None:
            procs += [i for pid in self._proxies.pids() if (i := janitor.process_identity(pid))]
        self._record.data["processes"] = procs
        self._record.data["namespaces"] = self.lan.namespaces()
        self._record.save()

    # -- clients ------------------------------------------------------------------------
    @property
    def control_plane(self) -> ControlPlane:
        """The control-plane processes (started)."""
        if self._control_plane is None:
            raise RuntimeError("the cluster is not started")
        return self._control_plane

    @property
    def kubelet(self) -> ProcessKubelet:
        """The process kubelet (started)."""
        if self._kubelet is None:
            raise RuntimeError("the cluster is not started")
        return self._kubelet

    @property
    def kube_proxies(self) -> dict[str, NodeProxy]:
        """node name → its kube-proxy (started with the node)."""
        if self._proxies is None:
            raise RuntimeError("the cluster is not started, or runs without kube-proxy")
        return dict(self._proxies.proxies)

    @property
    def pki(self) -> Pki:
        """Certificates, keys and kubeconfigs of this run."""
        if self._pki is None:
            raise RuntimeError("the cluster is not started")
        return self._pki

    @property
    def server_url(self) -> str:
        """``https://198.19.k.1:6443``: reachable from the root namespace and every node."""
        return f"https://{self.lan.host_address}:{self.config.api_port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (client certificate in ``system:masters``)."""
        return self.pki.admin_kubeconfig

    def api_client(self) -> client.ApiClient:
        """A new admin :class:`kubernetes.client.ApiClient` (the caller may close it)."""
        cfg = client.Configuration()
        config.load_kube_config(
            config_file=str(self.kubeconfig), client_configuration=cfg)
        return client.ApiClient(cfg)

    @property
    def core(self) -> client.CoreV1Api:
        """A shared admin CoreV1Api."""
        if self._api is None:
            self._api = self.api_client()
        return client.CoreV1Api(self._api)

    @property
    def objects(self) -> Objects:
        """Admin access to any kind as plain dictionaries (create, apply, get, list...)."""
        if self._objects is None:
            self._objects = Objects(self.api_client())
        return self._objects

    def helm(self, state_dir: Path | None = None) -> Helm:
        """A helm runner with admin credentials and private XDG directories."""
        return Helm(self.kubeconfig, state_dir or self.workdir / "helm")

    def kubectl_env(self) -> dict[str, str]:
        """An environment for running ``kubectl`` against this cluster."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def service_account_client(self, namespace: str, name: str) -> client.ApiClient:
        """An ApiClient that authenticates as a ServiceAccount (from its token Secret)."""
        token = self.service_account_token(namespace, name)
        cfg = client.Configuration()
        cfg.host = self.server_url
        cfg.ssl_ca_cert = str(self.pki.ca_cert)
        cfg.api_key = {"authorization": f"Bearer {token}"}
        return client.ApiClient(cfg)

    def service_account_token(self, namespace: str, name: str, timeout: float = 30) -> str:
        """The ServiceAccount's token (waits for the token controller to create it)."""
        import base64  # noqa: PLC0415 — only this helper needs it

        deadline = time.monotonic() + timeout
        while True:
            sa = self.core.read_namespaced_service_account(name, namespace)
            for ref in sa.secrets or []:
                if ref.name is None:
                    continue
                secret = self.core.read_namespaced_secret(ref.name, namespace)
                if secret.data and "token" in secret.data:
                    return base64.b64decode(secret.data["token"]).decode()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no token for serviceaccount {namespace}/{name}")
            time.sleep(0.1)

    def wait_for_service_account(self, namespace: str, name: str = "default",
                                 timeout: float = 30) -> None:
        """Wait until the ServiceAccount and its token exist (pods are admitted then)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.service_account_token(namespace, name, timeout=max(0.1, deadline - time.monotonic()))
                return
            except client.ApiException as e:
                if e.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Create a namespace and wait for its ``default`` ServiceAccount token."""
        self.core.create_namespace(client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels=dict(labels or {}))))
        self.wait_for_service_account(name)

    # -- nodes ------------------------------------------------------------------------------
    def _add_node(self, name: str, labels: Mapping[str, str]) -> ClusterNode:
        number = 1 + max((h.number for h in self.lan.nodes), default=0)
        port = self.lan.add_node(name, number)
        self._save_record()
        node = ClusterNode(name, port.netns, port.ipv4, port.ipv6)
        self.nodes[name] = node
        self.kubelet.add_node(NodeHandle(name, port.netns, str(port.ipv4.ip)))
        nodes.register_node(self.core, name, [str(port.ipv4.ip), str(port.ipv6.ip)], labels)
        if self._proxies is not None:
            self._proxies.start(name, port.netns, str(port.ipv4.ip))
            self._save_record()
        return node

    def add_node(self, name: str, labels: Mapping[str, str] | None = None) -> ClusterNode:
        """Add a node (namespace + Node object) to the running cluster; waits until it is
        schedulable."""
        node = self._add_node(name, labels or {})
        nodes.wait_schedulable(self.core, [name])
        if self._proxies is not None:
            self._proxies.wait([name], self.config.start_timeout)
        return node

    def remove_node(self, name: str) -> None:
        """Stop the node's pods (no hooks), delete its pods and Node object, remove its
        namespace."""
        self.kubelet.remove_node(name)
        if self._proxies is not None:
            self._proxies.stop(name)
        nodes.delete_node(self.core, name)
        janitor.kill_namespace_processes([self.nodes[name].netns])
        self.lan.remove_node(name)
        del self.nodes[name]
        self._save_record()

    def set_node_ready(self, name: str, ready: bool) -> None:
        """Set the Node's Ready condition (False: the controller manager taints it)."""
        nodes.set_node_ready(self.core, name, ready)

    # -- faults ------------------------------------------------------------------------------
    def disconnect_node(self, name: str) -> None:
        """Cut the node off the LAN; its own link stays up (a broken switch port)."""
        self.lan.disconnect(name)

    def reconnect_node(self, name: str) -> None:
        """Undo :meth:`disconnect_node`."""
        self.lan.reconnect(name)

    @contextlib.contextmanager
    def node_disconnected(self, name: str) -> Iterator[None]:
        """The node is cut off the LAN inside the block, reconnected after it."""
        self.disconnect_node(name)
        try:
            yield
        finally:
            self.reconnect_node(name)

    def set_node_link(self, name: str, up: bool) -> None:
        """Set the node's ``eth0`` down/up (a link failure the node sees itself)."""
        self.lan.set_link(name, up)

    def set_gateway(self, up: bool) -> None:
        """Take the LAN's gateway away (arbiter pings fail) or bring it back."""
        self.lan.set_gateway(up)

    def stop_api_server(self) -> None:
        """Stop kube-apiserver (etcd, controllers and pods keep running)."""
        self.control_plane.stop_apiserver()

    def start_api_server(self) -> None:
        """Start kube-apiserver again; wait until it is ready and the controllers are back.

        The controller-manager's informers reconnect with a backoff (measured: up to about
        40 s after a minute's outage); until then a new namespace gets no ServiceAccount.
        A throwaway namespace whose token appears shows they are live again.
        """
        self.control_plane.start_apiserver(self.config.start_timeout)
        self._save_record()
        probe = f"resync-{secrets.token_hex(3)}"
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=probe)))
        try:
            self.wait_for_service_account(probe, timeout=120)
        finally:
            self.core.delete_namespace(probe)

    @contextlib.contextmanager
    def api_server_down(self) -> Iterator[None]:
        """kube-apiserver is stopped inside the block and ready again after it."""
        self.stop_api_server()
        try:
            yield
        finally:
            self.start_api_server()

    # -- looking inside ------------------------------------------------------------------------
    @property
    def gateway_address(self) -> ipaddress.IPv4Address:
        """The LAN gateway (default route of every node; answers pings)."""
        return self.lan.gateway_address

    @property
    def client_netns(self) -> str:
        """The client namespace on the LAN (198.19.k.250), for reaching VIPs as a user would."""
        return self.lan.netns("client")

    def vip(self, n: int = 0) -> ipaddress.IPv4Address:
        """An address on the LAN no node or harness part uses (for VirtualIPs)."""
        return self.lan.vip(n)

    def vip6(self, n: int = 0) -> ipaddress.IPv6Address:
        """The IPv6 counterpart of :meth:`vip`."""
        return self.lan.vip6(n)

    def node_addresses(self, name: str, device: str = "eth0") -> list[IPInterface]:
        """The global addresses on the node's ``eth0`` now (VIPs included)."""
        return netns_addresses(self.nodes[name].netns, device)

    def exec_in_node(self, name: str, argv: Sequence[str],
                     timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node's network namespace."""
        return run(self.nodes[name].netns, *argv, check=False, timeout=timeout)

    def exec_in_client(self, argv: Sequence[str],
                       timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command in the client namespace."""
        return run(self.lan.netns("client"), *argv, check=False, timeout=timeout)

    def iptables_save(self, name: str, table: str = "nat") -> str:
        """The node's iptables rules (``iptables-save -t table`` in its namespace)."""
        return iptables_save(self.nodes[name].netns, table)

    def register_entrypoint(self, image: str, argv: Sequence[str]) -> None:
        """What a container of ``image`` (any tag) runs when it has no ``command``."""
        from keepvip.localcluster.podspec import image_repository  # noqa: PLC0415

        self.kubelet.entrypoints[image_repository(image)] = list(argv)

    def container_log_path(self, namespace: str, pod: str, container: str) -> Path:
        """The file holding a container's stdout and stderr (all restarts appended)."""
        return self.kubelet.log_path(namespace, pod, container)

    def container_log(self, namespace: str, pod: str, container: str) -> str:
        """A container's output so far."""
        try:
            return self.container_log_path(namespace, pod, container).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary of the run (for logs and the demo)."""
        return {"prefix": self.prefix, "server": self.server_url,
                "kubeconfig": str(self.kubeconfig), "workdir": str(self.workdir),
                "lan": self.lan.describe()}
