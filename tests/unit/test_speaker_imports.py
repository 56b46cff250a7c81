"""A standalone speaker imports only what it uses (issue 15, memory).

Each check runs in a fresh interpreter: what one test imported must not hide what
another imports.
"""

from __future__ import annotations

import json
import subprocess
import sys

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
