"""Golden tests: MetalLB, kube-vip and Cilium fixtures → keepvip documents, Service patches, report.

A fixture is a folder of ``tests/data/<tool>/`` holding ``input/`` (the files a user would
give; the folder itself is the argument, so folder reading is exercised too) and the
expected outputs ``expected.yaml`` (pools and VirtualIPs), ``expected-services.yaml``
(Service annotation patches), ``expected-annotate.sh`` and ``expected-report.txt``. A
folder whose name ends in ``-adopt`` is converted with ``--adopt``. Set
``KEEPVIP_REGENERATE_GOLDENS=1`` to rewrite the expected files after a deliberate change,
then read the diff before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from keepvip.api.parse import parse_virtualip
from keepvip.api.pool import parse_pool
from keepvip.convert.balancers import Conversion, convert

DATA = Path(__file__).parents[2] / "data"
TOOLS = {"metallb": "metallb", "kube-vip": "kubevip", "cilium": "cilium"}
CASES = [
    (tool, case.name)
    for tool, folder in TOOLS.items()
    for case in sorted((DATA / folder).iterdir())
    if case.is_dir()
]
REGENERATE = os.environ.get("KEEPVIP_REGENERATE_GOLDENS") == "1"


def run(tool: str, case: str) -> Conversion:
    return convert(tool, [DATA / TOOLS[tool] / case / "input"], adopt=case.endswith("-adopt"))


def compare(path: Path, actual: str) -> None:
    if REGENERATE:
        path.write_text(actual)
    assert path.exists(), f"{path} is missing: run with KEEPVIP_REGENERATE_GOLDENS=1 and review it"
    assert actual == path.read_text()


def test_every_tool_has_pools_services_and_invalid_fixtures() -> None:
    for folder in TOOLS.values():
        names = {p.name for p in (DATA / folder).iterdir() if p.is_dir()}
        assert {"services-adopt", "invalid"} <= names, folder
        assert len(names) >= 3, folder


@pytest.mark.parametrize(("tool", "case"), CASES)
def test_fixture_converts_to_the_expected_documents_patches_and_report(tool: str, case: str) -> None:
    conversion = run(tool, case)
    folder = DATA / TOOLS[tool] / case
    compare(folder / "expected.yaml", conversion.documents_text())
    compare(folder / "expected-services.yaml", conversion.patches_text())
    compare(folder / "expected-annotate.sh", conversion.script)
    compare(folder / "expected-report.txt", conversion.report.render())


@pytest.mark.parametrize(("tool", "case"), CASES)
def test_every_emitted_document_is_accepted_by_the_api_model(tool: str, case: str) -> None:
    for document in yaml.safe_load_all(run(tool, case).documents_text()):
        if document["kind"] == "VirtualIPPool":
            parse_pool(document)
        else:
            parse_virtualip(document)


@pytest.mark.parametrize(("tool", "case"), CASES)
def test_invalid_input_fails_and_only_invalid_input_fails(tool: str, case: str) -> None:
    conversion = run(tool, case)
    broken = case.startswith("invalid") or (tool, case) == ("kube-vip", "bgp")  # bgp: nothing converts
    assert conversion.report.failed == broken, conversion.report.render()
