"""``keepvip speaker --ownership-marker``: names its marker, refuses a state directory it cannot write.

The refusal happens before the speaker touches the network, so this runs the real
command line in the test's own process tree (root: the configuration file must be root's).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox_helpers import secure_directory

KEEPVIP = Path(sys.executable).parent / "keepvip"
CONFIG = """apiVersion: keepvip.io/v1alpha1
kind: VirtualIP
metadata: {name: web}
spec: {addresses: [198.18.0.100/24], vrrp: {vrid: 9}}
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the configuration file must be root's")


@pytest.fixture
def directory() -> Iterator[Path]:
    with secure_directory("keepvip-ownership-") as path:
        yield path


def test_a_state_directory_that_cannot_be_created_refuses_the_start_naming_it(directory: Path) -> None:
    config = directory / "vips.yaml"
    config.write_text(CONFIG)
    blocker = directory / "not-a-directory"
    blocker.write_text("")
    argv = [
        str(KEEPVIP), "speaker", "--node", "n1", "--log-format", "text", "--config", str(config),
        "--ownership-marker", "state-file", "--state-dir", str(blocker / "state"),
    ]  # fmt: skip

    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)

    assert result.returncode == 1
    assert "ownership marker: state-file" in result.stderr
    assert "forced by --ownership-marker" in result.stderr
    assert f"refusing to start: --state-dir: {blocker / 'state'}" in result.stderr
