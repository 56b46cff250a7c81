"""keepvip installed on the local cluster, with web servers to keep alive and a client.

The end-to-end tests and ``keepvip demo`` tell the same story, so they share this one
driver: ``helm install`` of ``charts/keepvip`` (the operator and, through it, the speaker
DaemonSet, all run by the process kubelet under the chart's own ServiceAccounts), a
tiny web server in every node's namespace answering with the node's name (what an
ingress controller would be), VirtualIPs applied as a user would, and a client on the
LAN asking the VIP who answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from keepvip.localcluster import probe, webserver
from keepvip.localcluster.cluster import LocalCluster
from keepvip.localcluster.helm import Helm
from keepvip.localcluster.procs import ChildProcess
from keepvip.localcluster.source import chart
from keepvip.localcluster.waiting import wait_until

API_VERSION = "keepvip.io/v1alpha1"
WEB_PORT = 80


# A backend pod's server (argv: port, then optionally a JSON map of address -> name):
# answers every GET with "<pod> <node> <source>", the source address of the connection
# it accepted, named through the map when listed. Behind kube-proxy the source tells the
# path: the client's own address (externalTrafficPolicy Local), or the node that
# forwarded and masqueraded the connection (Cluster): the VIP's holder.
BACKEND_SERVER = """
import http.server, json, os, sys
names = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
who = os.environ["POD_NAME"] + " " + os.environ["NODE_NAME"]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        source = names.get(self.client_address[0], self.client_address[0])
        body = (who + " " + source + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
"""


def backend_pod(name: str, node: str, port: int, labels: Mapping[str, str],
                names: Mapping[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """A Pod pinned to ``node`` running :data:`BACKEND_SERVER` on ``port``, ready-probed."""
    argv = ["python3", "-c", BACKEND_SERVER, str(port), *([json.dumps(dict(names))] if names else [])]
    env = [{"name": key, "valueFrom": {"fieldRef": {"fieldPath": path}}}
           for key, path in (("POD_NAME", "metadata.name"), ("NODE_NAME", "spec.nodeName"))]  # fmt: skip
    container = {"name": "web", "image": "keepvip-test/web", "command": argv, "env": env,
                 "ports": [{"containerPort": port, "name": "http"}],
                 "readinessProbe": {"httpGet": {"path": "/", "port": port}, "periodSeconds": 1}}  # fmt: skip
    spec = {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [container]}
    metadata = {"name": name, "labels": dict(labels)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


class KeepvipOnCluster:
    """A keepvip release on a `LocalCluster`, plus per-node web servers."""

    def __init__(self, cluster: LocalCluster, namespace: str, release: str = "keepvip") -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.release = release
        self.objects = cluster.objects
        self.web: dict[str, ChildProcess] = {}

    # -- installing -------------------------------------------------------------------
    def install(self, helm: Helm, values: Sequence[str] = (), timeout: float = 120.0) -> None:
        """``helm install`` the chart and wait until a speaker runs on every node."""
        where = chart()  # raises SourceTreeMissingError, naming $KEEPVIP_SOURCE
        self.cluster.create_namespace(self.namespace)
        # The local nodes share this machine's disk: their state directory is the cluster's, not /var/lib.
        state = ["--set", f"speaker.stateDir={self.cluster.workdir / 'speaker-state'}"]
        helm.run("install", self.release, str(where), "-n", self.namespace, *state, *values,
                 "--wait", "--timeout", f"{int(timeout)}s", timeout=timeout + 30)  # fmt: skip
        wait_until(self.speakers_ready, timeout=timeout, what="a ready speaker on every node")

    def speakers_ready(self) -> bool:
        """A speaker runs on every node and has applied its first snapshot (it logs "ready")."""
        running = self.running_speakers()
        return len(running) == len(self.cluster.nodes) and all(
            '"ready: ' in self.cluster.container_log(self.namespace, pod, "speaker")
            or " ready: " in self.cluster.container_log(self.namespace, pod, "speaker")
            for pod in running.values()
        )

    def uninstall(self, helm: Helm) -> None:
        """``helm uninstall`` the release (the CRD stays, as helm leaves crds/)."""
        helm.run("uninstall", self.release, "-n", self.namespace, "--wait", check=False)

    def running_speakers(self) -> dict[str, str]:
        """node name → speaker pod name, for pods Running and not being deleted."""
        pods = self.objects.list("v1", "Pod", self.namespace,
                                 label_selector="app.kubernetes.io/component=speaker")  # fmt: skip
        return {
            p["spec"]["nodeName"]: p["metadata"]["name"]
            for p in pods
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        }

    def speaker_log(self, node: str) -> str:
        """The current speaker pod's log on ``node``."""
        pod = self.running_speakers().get(node)
        return self.cluster.container_log(self.namespace, pod, "speaker") if pod else ""

    def delete_speaker_pod(self, node: str) -> str:
        """Delete the speaker pod of ``node`` the way ``kubectl delete pod`` does (graceful)."""
        pod = self.running_speakers()[node]
        self.objects.delete("v1", "Pod", pod, self.namespace)
        return pod

    # -- web servers --------------------------------------------------------------------
    def start_web(self, node: str) -> None:
        """Serve a page naming ``node`` on port 80 of its namespace (an ingress controller)."""
        argv = ["ip", "netns", "exec", self.cluster.nodes[node].netns, *webserver.argv(node, WEB_PORT)]
        process = ChildProcess(f"web-{node}", argv, self.cluster.workdir / "web" / f"{node}.log")
        process.start()
        self.web[node] = process
        wait_until(lambda: self._listening(node), timeout=10, what=f"the web server on {node}")

    def _listening(self, node: str) -> bool:
        out = self.cluster.exec_in_node(node, ["ss", "-Hltn", f"sport = :{WEB_PORT}"])
        return bool(out.stdout.strip())

    def stop_web(self, node: str) -> None:
        """Stop the web server of ``node`` (its health check starts failing)."""
        self.web.pop(node).stop(grace=1.0)

    def stop_all_web(self) -> None:
        """Stop every web server this driver started."""
        for node in list(self.web):
            self.stop_web(node)

    # -- VirtualIPs ---------------------------------------------------------------------
    def apply(self, document: Mapping[str, Any]) -> None:
        """Create or update a VirtualIP (server-side apply, as ``kubectl apply`` would)."""
        self.objects.apply(dict(document), field_manager="kubectl")

    def delete(self, name: str) -> None:
        """Delete a VirtualIP."""
        self.objects.delete(API_VERSION, "VirtualIP", name)

    def get(self, name: str) -> dict[str, Any] | None:
        """The VirtualIP as stored, or None."""
        return self.objects.get(API_VERSION, "VirtualIP", name)

    def status(self, name: str) -> dict[str, Any]:
        """The VirtualIP's status ({} before any)."""
        found = self.get(name)
        return dict((found or {}).get("status") or {})

    def node_states(self, name: str) -> dict[str, str]:
        """node → state, from status.nodes (each speaker's own entry)."""
        return {n["node"]: n["state"] for n in self.status(name).get("nodes") or []}

    # -- what the LAN sees --------------------------------------------------------------
    def who_answers(self, address: str, timeout: float = 0.5) -> str | None:
        """The node whose web server answers ``address`` from the client, or None."""
        out = self.cluster.exec_in_client(probe.once_argv(address, WEB_PORT, timeout))
        answer = out.stdout.strip()
        return None if answer in ("", probe.UNANSWERED) else answer

    def holders(self, address: str) -> list[str]:
        """Nodes that have ``address`` on their interface."""
        return [
            node for node in self.cluster.nodes
            if any(str(a.ip) == address for a in self.cluster.node_addresses(node))
        ]  # fmt: skip

    def wait_for_answer(self, address: str, node: str | None, timeout: float) -> float:
        """Wait until ``node`` answers ``address`` (None: nobody); return the seconds it took."""
        start = time.monotonic()
        wait_until(lambda: self.who_answers(address) == node, timeout=timeout,
                   what=f"{node or 'nobody'} to answer {address}")  # fmt: skip
        return time.monotonic() - start
