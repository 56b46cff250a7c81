"""The operator's settings: the chart's ConfigMap, refused with the key named when wrong."""

from __future__ import annotations

import argparse
from ipaddress import ip_address
from pathlib import Path

import pytest
from pydantic import ValidationError

from keepvip.operator.main import settings_from_args, split_address
from keepvip.operator.serviceref import desired_ingress
from keepvip.operator.settings import AllocationSettings, OperatorSettings, load_settings


def test_defaults_load_without_a_file() -> None:
    settings = load_settings(None)
    assert settings.namespace == "keepvip-system"
    assert settings.allocation.ipv4_groups == ("224.0.0.200-224.0.0.249",)


def test_the_chart_file_is_camel_case_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "operator.yaml"
    path.write_text("namespace: vip\nallocation: {vridFirst: 10, vridLast: 20}\nwebhook: {url: 'https://127.0.0.1:9443'}\n")
    settings = load_settings(path)
    assert (settings.allocation.vrid_first, settings.webhook.url) == (10, "https://127.0.0.1:9443")
    path.write_text("namespce: vip\n")
    with pytest.raises(ValidationError, match="namespce"):
        load_settings(path)


@pytest.mark.parametrize(
    ("groups", "complaint"),
    [
        ({"ipv4Groups": ["239.1.1.1"]}, "224.0.0.0/24"),
        ({"ipv4Groups": ["ff02::1"]}, "not IPv4"),
        ({"ipv6Groups": ["ff05::1"]}, "ff02::/16"),
        ({"ipv4Groups": ["224.0.0.220-224.0.0.210"]}, "exceeds the last"),
        ({"ipv4Groups": ["224.0.0.x"]}, "224.0.0.x"),
    ],
)
def test_group_pools_must_be_link_local_multicast_of_their_family(
    groups: dict[str, list[str]], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        AllocationSettings.model_validate(groups)


def test_settings_file_comes_from_the_flag_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "operator.yaml"
    path.write_text("namespace: from-file\n")
    monkeypatch.setenv("KEEPVIP_OPERATOR_SETTINGS", str(path))
    assert settings_from_args(argparse.Namespace()).namespace == "from-file"
    assert settings_from_args(argparse.Namespace(namespace="flag")).namespace == "flag"
    assert OperatorSettings().namespace == "keepvip-system"


def test_metrics_address_parses_host_and_port() -> None:
    assert split_address("127.0.0.1:9000", 1) == ("127.0.0.1", 9000)
    assert split_address("[::1]:9000", 1) == ("::1", 9000)
    assert split_address(None, 9473) == ("0.0.0.0", 9473)


def test_service_ingress_gains_and_loses_only_this_virtualips_addresses() -> None:
    current = [{"ip": "203.0.113.9"}, {"hostname": "lb.example"}]
    added = desired_ingress(current, add=[ip_address("198.18.0.100"), ip_address("198.18.0.100")])
    assert added == [{"ip": "203.0.113.9"}, {"hostname": "lb.example"}, {"ip": "198.18.0.100"}]
    assert desired_ingress(added, remove=[ip_address("198.18.0.100")]) == current


def test_exec_checks_are_off_by_default_and_never_run_as_root() -> None:
    execs = OperatorSettings().speaker.exec_checks
    assert execs.enabled is False
    assert (execs.run_as_user, execs.run_as_group) == (65534, 65534)
    with pytest.raises(ValidationError, match="runAsUser"):
        OperatorSettings.model_validate({"speaker": {"execChecks": {"runAsUser": 0}}})
    with pytest.raises(ValidationError, match="allowedCommands"):
        OperatorSettings.model_validate({"speaker": {"execChecks": {"allowedCommands": ["check.sh"]}}})
