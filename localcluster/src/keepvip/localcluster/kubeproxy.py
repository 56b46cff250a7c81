"""kube-proxy (iptables mode) in every node namespace, as users run it.

Why the real one: keepvip announces a VIP, kube-proxy carries what arrives on it to a
backend pod. The LoadBalancer path (client → VIP → kube-proxy → pod on some node) and
``externalTrafficPolicy: Local`` (kube-proxy's ``healthCheckNodePort`` answering 200
only where a ready endpoint runs) are only honest end to end with kube-proxy itself,
built by ``hack/build-k8s.sh`` from the same Debian source as the control plane.

Each node's kube-proxy runs as ``ip netns exec <node> kube-proxy ...``, so its iptables
rules, conntrack table, sockets and per-namespace sysctls live in that namespace and
never in the root one. Flags, and why:

* ``--proxy-mode=iptables``, ``--hostname-override=<node>`` (EndpointSlices name
  endpoints' nodes by it: that is what makes an endpoint *local*),
  ``--bind-address=<node IP>`` (the node IP kube-proxy assumes; IPv4 single stack, as
  v1.20 without the alpha dual-stack gate is);
* a kubeconfig with the client certificate ``CN=system:kube-proxy``, which the built-in
  ClusterRoleBinding ``system:node-proxier`` binds: the least privilege kubeadm gives it,
  not admin;
* no ``--cluster-cidr``: pods here use their node's address (see
  docs/local-cluster.md), so the only CIDR that would cover the pods is the LAN itself,
  which holds the LAN client too. With it, kube-proxy would take the client for a pod
  and send its ``externalTrafficPolicy: Local`` traffic to any endpoint (the v1.20
  "pod → external VIP goes to the ClusterIP" shortcut), defeating the test of Local;
* ``--conntrack-max-per-core=0``: ``nf_conntrack_max`` and the conntrack hash size are
  global (root-namespace) knobs; 0 leaves them alone. The two TCP conntrack timeouts it
  still sets are per network namespace (measured: the root's stay as they were);
* ``--healthz-bind-address=0.0.0.0:10256`` and ``--metrics-bind-address=127.0.0.1:10249``:
  the upstream defaults, which here mean the node namespace's addresses only;
* ``--oom-score-adj=0``: upstream makes kube-proxy the last thing the OOM killer takes;
  on a shared test machine it gets no such privilege.

kube-proxy sets ``net.ipv4.conf.all.route_localnet=1`` in its namespace. It relies on
two things a real node's kubelet and CNI provide, so :func:`prepare_node` does them in the
node namespace before kube-proxy starts:

* ``net.ipv4.ip_forward=1`` (the CNI's job): a NodePort or VIP reached on one node is
  DNATed to a pod on another and must be forwarded;
* the kubelet's own iptables rules (v1.20 ``pkg/kubelet/kubelet_network_linux.go``,
  ``syncNetworkUtil``): ``KUBE-MARK-DROP`` sets mark 0x8000 and ``KUBE-FIREWALL``, jumped
  to from INPUT and OUTPUT, drops packets carrying it and blocks non-local connections
  to 127.0.0.0/8 (CVE-2020-8558, needed once route_localnet is 1). kube-proxy v1.20 only
  makes sure ``KUBE-MARK-DROP`` exists: without the kubelet's rules, what it means to
  drop (``externalTrafficPolicy: Local`` traffic on a node without a local endpoint) is
  delivered to the node instead.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from keepvip.localcluster.lan import run
from keepvip.localcluster.procs import ChildProcess

HEALTHZ_PORT = 10256
"""kube-proxy's own ``/healthz`` port (all addresses of the node namespace)."""
METRICS_PORT = 10249
"""kube-proxy's ``/metrics`` port (the node namespace's loopback)."""
IDENTITY = "system:kube-proxy"
"""The user kube-proxy authenticates as (bound to ClusterRole ``system:node-proxier``)."""


class KubeProxyError(RuntimeError):
    """kube-proxy did not come up in a node namespace; the message carries its log tail."""


def proxy_argv(binary: Path, kubeconfig: Path, node: str, node_ip: str) -> list[str]:
    """The command line of one node's kube-proxy (see the module docstring for each flag)."""
    return [
        str(binary), f"--kubeconfig={kubeconfig}", "--proxy-mode=iptables",
        f"--hostname-override={node}", f"--bind-address={node_ip}",
        f"--healthz-bind-address=0.0.0.0:{HEALTHZ_PORT}",
        f"--metrics-bind-address=127.0.0.1:{METRICS_PORT}",
        "--conntrack-max-per-core=0", "--oom-score-adj=0", "--v=1",
    ]


DROP_MARK = "0x8000/0x8000"
"""The kubelet's default drop mark (``--iptables-drop-bit=15``), the one kube-proxy uses."""

KUBELET_RULES = f"""*filter
:KUBE-FIREWALL - [0:0]
-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" \
-m mark --mark {DROP_MARK} -j DROP
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \
"block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-I INPUT -j KUBE-FIREWALL
-I OUTPUT -j KUBE-FIREWALL
COMMIT
*nat
:KUBE-MARK-DROP - [0:0]
-A KUBE-MARK-DROP -j MARK --set-xmark {DROP_MARK}
COMMIT
"""
"""What a v1.20 kubelet installs on its node (see the module docstring), as iptables-restore input."""


def prepare_node(netns: str) -> None:
    """Make the node namespace what kube-proxy expects of a node: IPv4 forwarding (a CNI
    plugin's job) and the kubelet's drop and localnet rules."""
    run(netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    subprocess.run(["ip", "netns", "exec", netns, "iptables-restore", "--noflush"],
                   input=KUBELET_RULES, capture_output=True, text=True, check=True, timeout=30)


def iptables_save(netns: str, table: str = "nat") -> str:
    """``iptables-save -t <table>`` inside ``netns`` (how to see what kube-proxy did)."""
    return run(netns, "iptables-save", "-t", table).stdout


@dataclass
class NodeProxy:
    """One node's kube-proxy process."""

    node: str
    netns: str
    node_ip: str
    process: ChildProcess

    def healthz(self) -> int | None:
        """The HTTP status of ``/healthz`` on the node's address, ``None`` if unreachable."""
        out = run(self.netns,
            "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1",
            f"http://{self.node_ip}:{HEALTHZ_PORT}/healthz", check=False).stdout.strip()
        return int(out) if out.isdigit() and out != "000" else None

    def synced(self) -> bool:
        """Healthy, and the ``default/kubernetes`` Service is in the nat table: a full
        sync with data from the API server has happened."""
        if self.healthz() != 200:
            return False
        return "default/kubernetes:https" in iptables_save(self.netns)


class KubeProxies:
    """Starts and stops the kube-proxy of each node (one :class:`ChildProcess` each)."""

    def __init__(self, binary: Path, kubeconfig: Path, log_dir: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.proxies: dict[str, NodeProxy] = {}

    def start(self, node: str, netns: str, node_ip: str) -> NodeProxy:
        """Prepare the namespace and start its kube-proxy (does not wait; see :meth:`wait`)."""
        prepare_node(netns)
        argv = ["ip", "netns", "exec", netns,
                *proxy_argv(self.binary, self.kubeconfig, node, node_ip)]
        process = ChildProcess(f"kube-proxy {node}", argv, self.log_dir / f"kube-proxy-{node}.log")
        process.start()
        proxy = NodeProxy(node, netns, node_ip, process)
        self.proxies[node] = proxy
        return proxy

    def wait(self, nodes: list[str], timeout: float) -> None:
        """Wait until each named node's kube-proxy has synced its rules once."""
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        while pending:
            for node in list(pending):
                proxy = self.proxies[node]
                if not proxy.process.alive():
                    raise KubeProxyError(
                        f"kube-proxy on {node} exited with {proxy.process.poll()}; tail of "
                        f"{proxy.process.log_path}:\n{proxy.process.log_tail()}")
                if proxy.synced():
                    pending.remove(node)
            if pending and time.monotonic() > deadline:
                tails = "\n".join(f"{n}: {self.proxies[n].process.log_tail(5)}" for n in pending)
                raise KubeProxyError(f"kube-proxy not synced after {timeout} s on {pending}:\n{tails}")
            if pending:
                time.sleep(0.2)

    def stop(self, node: str) -> None:
        """Stop one node's kube-proxy (its rules stay in the namespace until it is removed)."""
        proxy = self.proxies.pop(node, None)
        if proxy is not None:
            proxy.process.stop(grace=2.0)

    def stop_all(self) -> None:
        """Stop every kube-proxy this object started."""
        for node in list(self.proxies):
            self.stop(node)

    def pids(self) -> list[int]:
        """Pids of the running kube-proxy processes (for the run record)."""
        return [p.process.pid for p in self.proxies.values() if p.process.pid is not None]


def root_namespace_iptables() -> str:
    """The root namespace's iptables rules (tests check that kube-proxy left none there)."""
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
