"""A standalone speaker imports only what it uses (issue 15, memory).

Each check runs in a fresh interpreter: what one test imported must not hide what
another imports.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

PROBE = """
import json, sys
import keepvip.speaker.main
loaded = sorted(sys.modules)
from pyroute2 import IPRoute, AsyncIPRoute  # anything else of pyroute2 still imports as usual
import pyroute2
print(json.dumps({"loaded": loaded, "same": AsyncIPRoute is keepvip.speaker.main.AsyncIPRoute,
                  "iproute": IPRoute.__name__, "ndb": "pyroute2.ndb" in sys.modules}))
"""


def test_the_speaker_loads_neither_the_rest_of_pyroute2_nor_the_kubernetes_client() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    found = json.loads(result.stdout)
    loaded = set(found["loaded"])
    assert "pyroute2.iproute.linux" in loaded
    assert not {"pyroute2.ndb.main", "pyroute2.ipdb", "pyroute2.conntrack", "sqlite3"} & loaded
    assert not {name for name in loaded if name.split(".")[0] in ("kubernetes", "kubernetes_asyncio", "kopf")}
    assert found["same"]  # the class the speaker uses is pyroute2's own
    assert found["iproute"] == "IPRoute"
    assert found["ndb"]  # asking for a name of the package loaded the whole package


STANDALONE = """
import json, sys
from keepvip.cli import main
status = main(["speaker", "--config", sys.argv[1], "--node", "n1", "--state-dir", sys.argv[2],
               "--ownership-marker", "state-file", "--no-script-security", "--no-supervisor"])
loaded = sorted(name for name, module in sys.modules.items() if module is not None)
import gc
frozen = gc.get_freeze_count()
import ssl
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # the stand-in imports ssl on first use
from prometheus_client import Counter  # the rest of prometheus_client still imports as usual
import importlib.metadata  # still imports as usual, on use
pydantic_version = importlib.metadata.version("pydantic")
import hashlib, hmac  # CPython's built-in hashes, without OpenSSL
digests = [hashlib.sha256(b"x").hexdigest()[:8], hmac.new(b"k", b"m", "md5").hexdigest()[:8]]
print(json.dumps({"status": status, "loaded": loaded, "ssl": type(context).__name__,
                  "counter": Counter.__name__, "digests": digests, "frozen": frozen,
                  "pydantic": pydantic_version}))
"""


def test_the_standalone_entry_loads_neither_openssl_nor_prometheus_exposition_nor_the_cluster_client(
    tmp_path: Path,
) -> None:
    """The whole ``keepvip speaker --config`` path up to reading the file (which is missing,
    so it stops there, exit status 1): what it loaded is what a running speaker has, and
    what it imported is frozen (gc.freeze)."""
    argv = [sys.executable, "-c", STANDALONE, str(tmp_path / "missing.yaml"), str(tmp_path / "state")]
    found = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    loaded = set(found["loaded"])
    assert found["status"] == 1
    assert {"asyncio", "keepvip.speaker.main", "keepvip.speaker.checks.http_probe", "pydantic"} <= loaded
    assert not {"_ssl", "_hashlib", "prometheus_client.exposition", "urllib.request", "http.client"} & loaded
    assert not {"importlib.metadata", "email", "email.message", "zipfile"} & loaded  # pydantic plugin lookup
    assert not {name for name in loaded if name.split(".")[0] in ("kubernetes", "kubernetes_asyncio", "kopf")}
    assert found["ssl"] == "SSLContext"
    assert found["counter"] == "Counter"
    assert found["digests"] == ["2d711642", "ed7e724d"]
    assert found["frozen"] > 10_000  # the imported modules' objects, out of the collector's way
    assert found["pydantic"].startswith("2.")


PLUGINS_PROBE = """
import json, os, sys
if sys.argv[1] != "unset":
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = sys.argv[1]
from keepvip.speaker.lean_imports import pydantic_plugins_off
pydantic_plugins_off()
import pydantic

class Vip(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True)
    priority: int = pydantic.Field(ge=1, le=254)

errors = []
for raw in ({"priority": 255}, {"priority": "100"}):
    try:
        Vip.model_validate(raw)
    except pydantic.ValidationError as error:
        errors.append([item["type"] for item in error.errors()])
print(json.dumps({"valid": Vip.model_validate({"priority": 100}).priority, "errors": errors,
                  "variable": os.environ["PYDANTIC_DISABLE_PLUGINS"],
                  "metadata": "importlib.metadata" in sys.modules}))
"""


@pytest.mark.parametrize(
    ("preset", "variable", "metadata"),
    [
        ("unset", "__all__", False),  # the speaker: no plugin lookup, no importlib.metadata
        ("some-plugin", "some-plugin", True),  # only some disabled: pydantic reads the entry points
    ],
)
def test_pydantic_validates_as_usual_without_its_plugin_lookup(
    preset: str, variable: str, metadata: bool
) -> None:
    """``pydantic_plugins_off`` changes where pydantic looks for plugins, not how it validates;
    a value the operator of the node set is kept, and the entry points are then read for real."""
    argv = [sys.executable, "-c", PLUGINS_PROBE, preset]
    found = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    assert found == {
        "valid": 100,
        "errors": [["less_than_equal"], ["int_type"]],
        "variable": variable,
        "metadata": metadata,
    }


HTTPS_PROBE = """
import ipaddress, sys
from keepvip.speaker.lean_imports import openssl_when_used
openssl_when_used()  # as the standalone entry does: asyncio without TLS
import asyncio, asyncio.sslproto
from keepvip.speaker.checks.http_probe import HttpProbe
assert asyncio.sslproto.ssl is None  # asyncio really has no TLS in this process
probe = HttpProbe(ipaddress.ip_address("127.0.0.1"), int(sys.argv[1]), 2, tls=True, path="/lean")
result = asyncio.run(probe.run())
print(result.ok, result.detail)
"""


def test_an_https_check_works_where_asyncio_has_no_tls(tmp_path: Path) -> None:
    """A standalone speaker's HTTPS check does TLS itself (keepvip.speaker.checks.tls)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=keepvip-test"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    paths: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        paths.append((await reader.readuntil(b"\r\n\r\n")).split(b" ")[1])
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario() -> bytes:
        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
        async with server:
            port = server.sockets[0].getsockname()[1]
            probe = await asyncio.create_subprocess_exec(
                sys.executable, "-c", HTTPS_PROBE, str(port), stdout=asyncio.subprocess.PIPE
            )
            out, _ = await probe.communicate()
            return out

    assert asyncio.run(scenario()).decode().strip() == "False status 204 (not expected)"
    assert paths == [b"/lean"]
