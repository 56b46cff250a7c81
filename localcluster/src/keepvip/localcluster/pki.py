"""Certificates, keys, tokens and kubeconfigs for one local control plane.

Made with ``openssl`` per cluster run into the run directory. Keys are ECDSA P-256:
generating them costs milliseconds where RSA-2048 costs most of a second each, and every
component (apiserver, controller-manager token signer, Go and Python TLS) accepts them.
The serving certificate must carry every address clients dial as an IP SAN (Go >= 1.15
ignores the CN), in particular the API server's address on the test LAN, which pods use.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

ADMIN_TOKEN = "keepvip-admin-token"  # noqa: S105 — a throwaway token for a throwaway cluster
"""A static bearer token for user ``admin`` in group ``system:masters``."""

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

SERVICE_CIDR = "198.18.224.0/20"
"""Allocated for Service ClusterIPs, never routed: kube-proxy DNATs them inside each node
namespace, so they exist only there (the root namespace must never dial one: its
default route is this machine's real uplink). A /20 (4094 ClusterIPs) because every
LoadBalancer Service takes one: a /24 refused the 255th Service, too few for
bench/lb.py. It lies in the RFC 2544 benchmarking block the tests use, clear of the LANs
(198.19.k.0/24), of bench/cluster_scale.py's and bench/lb.py's VIPs (198.18.200.0/23,
198.18.204.0/22) and of the isolation test's LAN (198.18.251.0/24)."""
KUBERNETES_SERVICE_IP = ipaddress.ip_network(SERVICE_CIDR)[1]
"""The ``kubernetes`` Service's ClusterIP (the range's first host), a name the API server's
certificate must carry."""


@dataclass(frozen=True)
class Pki:
    """Paths of everything :func:`generate_pki` wrote."""

    directory: Path

    def path(self, name: str) -> Path:
        """A file of the PKI directory by name (``ca.crt``, ``admin.kubeconfig``...)."""
        return self.directory / name

    @property
    def ca_cert(self) -> Path:
        """The cluster CA certificate (``ca.crt``), also what pods get as ``ca.crt``."""
        return self.path("ca.crt")

    @property
    def kube_proxy_kubeconfig(self) -> Path:
        """A kubeconfig for ``system:kube-proxy`` (ClusterRole ``system:node-proxier`` only)."""
        return self.path("kube-proxy.kubeconfig")

    @property
    def admin_kubeconfig(self) -> Path:
        """A kubeconfig for ``admin`` (client certificate, group ``system:masters``)."""
        return self.path("admin.kubeconfig")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _key(name: str, cwd: Path) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=cwd)


def _leaf(cwd: Path, name: str, cn: str, org: str = "", sans: str = "") -> None:
    _key(name, cwd)
    subj = f"/CN={cn}" + (f"/O={org}" if org else "")
    _openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=cwd)
    ext = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"]
    if sans:
        ext += ["extendedKeyUsage=serverAuth", f"subjectAltName={sans}"]
    else:
        ext += ["extendedKeyUsage=clientAuth"]
    (cwd / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.crt", "-days", "3650", "-extfile", f"{name}.ext",
        cwd=cwd,
    )
    (cwd / f"{name}.csr").unlink()
    (cwd / f"{name}.ext").unlink()


def write_kubeconfig(path: Path, server: str, ca_cert: Path, user: str,
                     *, cert: Path | None = None, key: Path | None = None,
                     token: str | None = None) -> None:
    """Write a one-context kubeconfig using either a client certificate or a bearer token."""
    creds: dict[str, str] = {}
    if cert is not None and key is not None:
        creds = {"client-certificate": str(cert), "client-key": str(key)}
    elif token is not None:
        creds = {"token": token}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local",
                      "cluster": {"server": server, "certificate-authority": str(ca_cert)}}],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def generate_pki(directory: Path, server_url: str,
                 server_ips: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> Pki:
    """Create a CA, the API server's serving certificate, client certificates for admin,
    controller-manager, scheduler, kube-proxy and the front proxy, the service-account key pair, the
    static token file and one kubeconfig per client (all pointing at ``server_url``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    d = directory
    _key("ca", d)
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/CN=keepvip-local-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", cwd=d)
    names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local"]
    ips = ["127.0.0.1", str(KUBERNETES_SERVICE_IP), *(str(ip) for ip in server_ips)]
    sans = ",".join([*(f"IP:{ip}" for ip in dict.fromkeys(ips)), *(f"DNS:{n}" for n in names)])
    _leaf(d, "apiserver", "kube-apiserver", sans=sans)
    _leaf(d, "admin", "admin", "system:masters")
    _leaf(d, "kcm", "system:kube-controller-manager")
    _leaf(d, "scheduler", "system:kube-scheduler")
    # The built-in ClusterRoleBinding system:node-proxier binds this user name.
    _leaf(d, "kube-proxy", "system:kube-proxy")
    _leaf(d, "front-proxy-client", "front-proxy-client")
    _key("sa", d)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    (d / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,uid-admin,"system:masters"\n')
    ca = d / "ca.crt"
    for client in ("admin", "kcm", "scheduler", "kube-proxy"):
        write_kubeconfig(d / f"{client}.kubeconfig", server_url, ca, client,
                         cert=d / f"{client}.crt", key=d / f"{client}.key")
    write_kubeconfig(d / "token-admin.kubeconfig", server_url, ca, "admin", token=ADMIN_TOKEN)
    for f in d.iterdir():
        if f.suffix == ".key":
            f.chmod(0o600)
    return Pki(d)
