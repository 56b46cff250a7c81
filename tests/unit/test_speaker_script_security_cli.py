"""``keepvip speaker`` refuses to start on a configuration file or --notify program others could modify.

Both refusals happen before the speaker touches the network, so this runs the real
command line in the test's own process tree (root, for chown).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from keepvip.cli import _build_parser
from keepvip.speaker.sandbox import ScriptPolicy
from keepvip.speaker.script_options import script_policy
from tests.sandbox_helpers import secure_directory

KEEPVIP = Path(sys.executable).parent / "keepvip"
CONFIG = """apiVersion: keepvip.io/v1alpha1
kind: VirtualIP
metadata: {name: web}
spec: {addresses: [198.18.0.100/24], vrrp: {vrid: 9}}
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown files")


@pytest.fixture
def directory() -> Iterator[Path]:
    with secure_directory("keepvip-cli-") as path:
        yield path


def speaker(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(KEEPVIP), "speaker", "--node", "n1", "--log-format", "text", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_a_config_file_writable_by_others_is_refused_with_path_and_reason(directory: Path) -> None:
    config = directory / "vips.yaml"
    config.write_text(CONFIG)
    config.chmod(0o666)
    result = speaker("--config", str(config))
    assert result.returncode == 1
    assert f"SECURITY VIOLATION: --config {config} refused: {config} is writable by others" in result.stderr


def test_a_config_file_under_a_directory_owned_by_someone_else_is_refused(directory: Path) -> None:
    inner = directory / "etc"
    inner.mkdir(mode=0o755)
    os.chown(inner, 4242, 4242)
    config = inner / "vips.yaml"
    config.write_text(CONFIG)
    result = speaker("--config", str(config))
    assert result.returncode == 1
    assert f"{inner} (a directory above {config}) is owned by uid 4242, not root" in result.stderr


def test_an_insecure_notify_program_stops_the_start(directory: Path) -> None:
    config = directory / "vips.yaml"
    config.write_text(CONFIG)
    notify = directory / "notify.sh"
    notify.write_text("#!/bin/sh\n")
    notify.chmod(0o775)
    os.chown(notify, 0, 4242)
    result = speaker("--config", str(config), "--notify", f"{notify} --flag")
    assert result.returncode == 1
    expected = f"--notify: SECURITY VIOLATION: {notify} refused: {notify} is writable by group 4242"
    assert expected in result.stderr


def policy(*args: str) -> ScriptPolicy:
    return script_policy(_build_parser().parse_args(["speaker", "--node", "n1", *args]))


def test_standalone_runs_exec_checks_under_script_security_by_default() -> None:
    standalone = policy("--config", "x.yaml")
    assert (standalone.exec_checks, standalone.allowed, standalone.require_absolute) == (True, None, False)
    assert standalone.script_security is True
    assert standalone.run_as.uid != 0
    assert policy("--config", "x.yaml", "--no-script-security").script_security is False


def test_in_a_cluster_exec_checks_are_off_unless_turned_on_and_then_allowlisted() -> None:
    cluster = policy("--kubernetes")
    assert (cluster.exec_checks, cluster.allowed, cluster.require_absolute) == (False, (), True)
    assert "speaker.execChecks.enabled" in cluster.disabled_hint
    on = policy("--kubernetes", "--exec-checks", "on", "--exec-allow", "/opt/checks/*", "--script-user=7:8")
    assert (on.exec_checks, on.allowed, on.run_as.uid, on.run_as.gid) == (True, ("/opt/checks/*",), 7, 8)
    with pytest.raises(ValueError, match="--exec-allow: 'checks/\\*' is not an absolute path pattern"):
        policy("--kubernetes", "--exec-allow", "checks/*")


def test_a_state_directory_that_cannot_be_created_refuses_the_start_naming_it(directory: Path) -> None:
    # (issue 10, "Old kernels": the state-file ownership marker needs its directory)
    config = directory / "vips.yaml"
    config.write_text(CONFIG)
    blocker = directory / "not-a-directory"
    blocker.write_text("")

    result = speaker(
        "--config", str(config), "--ownership-marker", "state-file", "--state-dir", str(blocker / "state")
    )

    assert result.returncode == 1
    assert "ownership marker: state-file" in result.stderr
    assert "forced by --ownership-marker" in result.stderr
    assert f"refusing to start: --state-dir: {blocker / 'state'}" in result.stderr
