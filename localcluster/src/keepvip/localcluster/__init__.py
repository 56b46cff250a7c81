"""A real Kubernetes cluster on one machine, for keepvip's tests and demo.

kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2 (built by
``hack/build-k8s.sh``) and etcd run as child processes; nodes are network namespaces on
one LAN bridge; a process kubelet runs each scheduled pod's command inside its node's
namespace with the pod's own ServiceAccount token, and kube-proxy v1.20.2 (iptables mode)
runs in every node namespace. See docs/local-cluster.md.
"""

from keepvip.localcluster.binaries import BinariesMissingError, find_helm
from keepvip.localcluster.cluster import ClusterConfig, ClusterNode, LocalCluster
from keepvip.localcluster.helm import Helm, HelmError
from keepvip.localcluster.lan import IPInterface
from keepvip.localcluster.objects import Objects
from keepvip.localcluster.waiting import wait_until

__all__ = [
    "BinariesMissingError",
    "ClusterConfig",
    "ClusterNode",
    "Helm",
    "HelmError",
    "IPInterface",
    "LocalCluster",
    "Objects",
    "find_helm",
    "wait_until",
]
