"""Golden tests: each keepalived fixture → VirtualIP documents → report, compared byte for byte.

A fixture is a folder of tests/data/keepalived holding one ``<node>.conf`` per node (the
file's stem is the node name; includes live in sub-folders), ``expected.yaml`` (the
documents) and ``expected-report.txt``. Set ``KEEPVIP_REGENERATE_GOLDENS=1`` to rewrite
the expected files after a deliberate change, then read the diff before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from keepvip.convert.command import convert_keepalived
from keepvip.convert.report import Outcome
from keepvip.convert.syntax import Statement, parse_file
from keepvip.speaker.sources.file import parse_config_text

FIXTURES = Path(__file__).parents[2] / "data" / "keepalived"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
REGENERATE = os.environ.get("KEEPVIP_REGENERATE_GOLDENS") == "1"


def nodes_of(case: str) -> list[tuple[str, Path]]:
    return [(path.stem, path) for path in sorted((FIXTURES / case).glob("*.conf"))]


def compare(path: Path, actual: str) -> None:
    if REGENERATE:
        path.write_text(actual)
    assert path.exists(), f"{path} is missing: run with KEEPVIP_REGENERATE_GOLDENS=1 and review it"
    assert actual == path.read_text()


def test_there_are_the_tutorial_its_nopreempt_variant_and_at_least_ten_more() -> None:
    assert {"tutorial", "tutorial-nopreempt"} <= set(CASES)
    assert len(CASES) >= 12


@pytest.mark.parametrize("case", CASES)
def test_fixture_converts_to_the_expected_documents_and_report(case: str) -> None:
    conversion = convert_keepalived(nodes_of(case))
    compare(FIXTURES / case / "expected.yaml", conversion.documents_text())
    compare(FIXTURES / case / "expected-report.txt", conversion.report.render())


@pytest.mark.parametrize("case", CASES)
def test_every_emitted_document_is_a_valid_standalone_configuration(case: str) -> None:
    conversion = convert_keepalived(nodes_of(case))
    snapshot = parse_config_text(conversion.documents_text())
    assert len(snapshot.virtualips) == sum(d["kind"] == "VirtualIP" for d in conversion.documents)
    for vip in snapshot.virtualips:
        authentication = vip.spec.vrrp.authentication
        if authentication is not None:
            ref = authentication.secret_ref
            assert (ref.namespace, ref.name, ref.key) in snapshot.secrets


@pytest.mark.parametrize("case", CASES)
def test_every_keyword_of_the_input_is_in_the_report(case: str) -> None:
    """Never silently: every statement read has a report entry, or lies in a block reported whole."""
    conversion = convert_keepalived(nodes_of(case))
    entries = {(e.node, str(e.location)): e.outcome for e in conversion.report.entries if e.location}
    whole = (Outcome.NOTE, Outcome.REFUSED, Outcome.UNSUPPORTED, Outcome.DROPPED, Outcome.ERROR)

    def walk(node: str, statements: list[Statement]) -> None:
        for statement in statements:
            outcome = entries.get((node, str(statement.location)))
            if outcome in whole and statement.block:
                continue  # the block is reported as a whole
            if statement.block:  # an opener such as virtual_ipaddress: its lines carry the entries
                walk(node, statement.block)
            else:
                assert outcome is not None, f"{case}: {node} {statement.location} {statement.text()!r}"

    for node, path in nodes_of(case):
        walk(node, parse_file(path).statements)


def test_the_tutorial_becomes_one_virtualip_with_per_node_priorities_and_a_tcp_check() -> None:
    documents = list(yaml.safe_load_all((FIXTURES / "tutorial" / "expected.yaml").read_text()))
    secret, vip = documents
    assert secret["kind"] == "Secret"
    assert secret["stringData"] == {"password": "K33pVIP1"}
    spec = vip["spec"]
    assert spec["nodePriorities"] == [
        {"nodeName": "node1", "priority": 100},
        {"nodeName": "node2", "priority": 90},
    ]
    assert spec["vrrp"] | {"authentication": None} == {
        "version": 2, "advertisementInterval": "1s", "vrid": 251, "multicastGroup": "224.0.0.100",
        "authentication": None,
    }  # fmt: skip
    assert spec["healthChecks"] == [
        {"name": "chk-port", "tcp": {"port": 80}, "interval": "2s", "timeout": "2s", "rise": 1, "fall": 1,
         "weight": -20}
    ]  # fmt: skip
    assert spec["preempt"] is True


def test_nopreempt_variant_says_preempt_false() -> None:
    (_, vip) = yaml.safe_load_all((FIXTURES / "tutorial-nopreempt" / "expected.yaml").read_text())
    assert vip["spec"]["preempt"] is False


def test_refusals_unsupported_and_errors_are_named() -> None:
    lvs = convert_keepalived(nodes_of("lvs")).report
    assert any(e.keyword == "virtual_server" and e.outcome is Outcome.REFUSED and "Service" in e.detail
               for e in lvs.entries)  # fmt: skip
    reverse = convert_keepalived(nodes_of("reverse-and-user")).report
    unsupported = [e for e in reverse.entries if e.outcome is Outcome.UNSUPPORTED]
    assert all("not yet supported by keepvip" in e.detail for e in unsupported)
    broken = convert_keepalived(nodes_of("malformed"))
    assert broken.report.failed
    errors = [e.render() for e in broken.report.entries if e.outcome is Outcome.ERROR]
    assert any("node1.conf:8:12" in e and "unterminated" in e for e in errors), errors
