"""The admission webhook's HTTPS server: its certificate and the client config it publishes.

kopf serves the webhook and keeps the ValidatingWebhookConfiguration filled; two things
are ours:

* The certificate. kopf can make a self-signed one, but through ``certbuilder`` /
  ``oscrypto``, which fail to detect OpenSSL 3 on Debian bookworm; so either the chart
  mounts a pair (``webhook.certDir``: ``tls.crt`` and ``tls.key``) or the operator makes
  one with the ``openssl`` command at start-up, naming the Service's DNS names and the
  URL's host.
* The client config. kopf publishes ``clientConfig.url``; in a cluster the API server
  should call the chart's Service instead (``clientConfig.service``), and only a
  webhook outside the cluster (``webhook.url``, e.g. tests against a local process)
  uses a URL.
"""

from __future__ import annotations

import base64
import ipaddress
import subprocess
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import kopf

from keepvip.operator.settings import OperatorSettings


def certificate_names(settings: OperatorSettings) -> list[str]:
    """The names the serving certificate must carry (subjectAltName entries, typed)."""
    service, namespace = settings.webhook.service_name, settings.namespace
    names = [
        f"DNS:{service}",
        f"DNS:{service}.{namespace}",
        f"DNS:{service}.{namespace}.svc",
        f"DNS:{service}.{namespace}.svc.cluster.local",
    ]
    if settings.webhook.url:
        host = urllib.parse.urlsplit(settings.webhook.url).hostname or ""
        try:
            names.append(f"IP:{ipaddress.ip_address(host)}")
        except ValueError:
            names.append(f"DNS:{host}")
    return names


def make_self_signed(directory: Path, names: Sequence[str]) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA bundle) and key in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "tls.crt", directory / "tls.key"
    common_name = names[0].split(":", 1)[1]
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={common_name}",
            "-addext", f"subjectAltName={','.join(names)}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
            "-addext", "extendedKeyUsage=serverAuth",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


def client_config(settings: OperatorSettings, ca_bundle: bytes) -> kopf.WebhookClientConfig:
    """What the API server is told: the Service (in a cluster) or the URL (outside)."""
    config = kopf.WebhookClientConfig(caBundle=base64.b64encode(ca_bundle).decode("ascii"))
    if settings.webhook.url:
        config["url"] = settings.webhook.url
    else:
        config["service"] = kopf.WebhookClientConfigService(
            namespace=settings.namespace,
            name=settings.webhook.service_name,
            port=settings.webhook.service_port,
            path="",
        )
    return config


class KeepvipWebhookServer(kopf.WebhookServer):
    """kopf's server, publishing the client config of :func:`client_config`."""

    def __init__(self, settings: OperatorSettings, certfile: Path, pkeyfile: Path) -> None:
        super().__init__(
            addr=settings.webhook.listen_address,
            port=settings.webhook.port,
            certfile=str(certfile),
            pkeyfile=str(pkeyfile),
        )
        self.keepvip_settings = settings
        self.ca_bundle = certfile.read_bytes()

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        """Serve as kopf does; replace each published client config with ours."""
        async for _ in super().__call__(fn):
            yield client_config(self.keepvip_settings, self.ca_bundle)


def webhook_server(settings: OperatorSettings, scratch: Path) -> KeepvipWebhookServer:
    """The server with the chart's certificate, or a fresh self-signed one in ``scratch``."""
    if settings.webhook.cert_dir:
        directory = Path(settings.webhook.cert_dir)
        cert, key = directory / "tls.crt", directory / "tls.key"
    else:
        cert, key = make_self_signed(scratch, certificate_names(settings))
    return KeepvipWebhookServer(settings, cert, key)
