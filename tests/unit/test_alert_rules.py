"""The chart's alert rules, evaluated by Prometheus's own rule engine (``promtool``).

test_chart_monitoring.py checks that the queries name real metrics and labels; this
module checks what they *do*: helm renders the PrometheusRule with the chart's default
thresholds, its rule groups become a Prometheus rules file, and ``promtool test rules``
feeds it the synthetic series of tests/alerts/keepvip_rules_test.yaml and compares the
alerts that fire (labels, annotations, ``for`` delays) with the ones expected there.

promtool is Debian's ``prometheus`` package (hack/install-system-deps.sh installs it);
a missing binary fails the test with that instruction rather than skipping it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart_helm import ROOT, Helm

TESTS = ROOT / "tests" / "alerts" / "keepvip_rules_test.yaml"
RULES_FILE = "keepvip-rules.yaml"  # the name the test file's rule_files refers to


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: run `sudo bash hack/install-system-deps.sh` "
                    "(Debian package prometheus)", pytrace=False)  # fmt: skip
    return found


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the rendered rules file and a copy of the promtool tests."""
    helm = Helm.find(tmp_path_factory.mktemp("helm"))
    rule = helm.template({"monitoring": {"prometheusRule": {"enabled": True}}}).one("PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    out = tmp_path_factory.mktemp("alerts")
    (out / RULES_FILE).write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    shutil.copy(TESTS, out / TESTS.name)
    return out


def test_the_rendered_rules_are_valid_prometheus_rules(workdir: Path) -> None:
    checked = run([promtool(), "check", "rules", RULES_FILE], workdir)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout


def test_every_alert_of_the_chart_has_a_promtool_test() -> None:
    tested = {case["alertname"] for test in yaml.safe_load(TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", ())}  # fmt: skip
    rendered = (ROOT / "charts" / "keepvip" / "templates" / "prometheusrule.yaml").read_text()
    alerts = {line.split(":", 1)[1].strip() for line in rendered.splitlines()
              if line.strip().startswith("- alert:")}  # fmt: skip
    assert alerts, "no alert found in the chart's PrometheusRule"
    assert alerts <= tested, f"alerts without a promtool test: {sorted(alerts - tested)}"


def test_the_alerts_fire_when_and_only_when_the_promtool_tests_expect(workdir: Path) -> None:
    tested = run([promtool(), "test", "rules", TESTS.name], workdir)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_a_changed_threshold_is_caught_by_the_promtool_tests(workdir: Path, tmp_path: Path) -> None:
    """The tests are not vacuous: moving the 95 % band's threshold makes promtool fail."""
    rules = (workdir / RULES_FILE).read_text()
    assert "> 0.95)" in rules
    (tmp_path / RULES_FILE).write_text(rules.replace("> 0.95)", "> 0.98)"))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    tested = run([promtool(), "test", "rules", TESTS.name], tmp_path)
    assert tested.returncode != 0
    assert "KeepvipPoolAddressesAbove95Percent" in tested.stdout + tested.stderr
