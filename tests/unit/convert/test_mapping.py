"""keepalived's defaults and per-node rules, mapped onto one VirtualIP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keepvip.convert.command import Conversion, convert_keepalived
from keepvip.convert.keepalived import read_node
from keepvip.convert.report import Outcome, Report
from keepvip.convert.syntax import parse_text

INSTANCE = """
vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 7
    {extra}
    virtual_ipaddress {{
        {address}
    }}
}}
"""


def convert(tmp_path: Path, *nodes: str, address: str = "198.18.0.100/24") -> Conversion:
    paths = []
    for index, extra in enumerate(nodes, 1):
        path = tmp_path / f"node{index}.conf"
        path.write_text(INSTANCE.format(extra=extra, address=address))
        paths.append((f"node{index}", path))
    return convert_keepalived(paths)


def vip(conversion: Conversion) -> dict[str, Any]:
    (document,) = [d for d in conversion.documents if d["kind"] == "VirtualIP"]
    return document


def details(conversion: Conversion, keyword: str) -> list[str]:
    return [f"{e.outcome.value}: {e.detail}" for e in conversion.report.entries if e.keyword == keyword]


def test_keepalived_defaults_are_written_out(tmp_path: Path) -> None:
    spec = vip(convert(tmp_path, "", ""))["spec"]
    assert spec["priority"] == 100
    assert "nodePriorities" not in spec
    assert spec["vrrp"] == {
        "version": 2,
        "advertisementInterval": "1s",
        "vrid": 7,
        "multicastGroup": "standard",
    }


def test_ipv6_instances_run_vrrpv3_whatever_vrrp_version_says(tmp_path: Path) -> None:
    spec = vip(convert(tmp_path, "version 2", "", address="2001:db8::100/64"))["spec"]
    assert spec["vrrp"]["version"] == 3


def test_priority_255_becomes_254_and_nopreempt_with_state_master_is_ignored(tmp_path: Path) -> None:
    conversion = convert(tmp_path, "priority 255\n state MASTER\n nopreempt", "priority 100\n state BACKUP")
    spec = vip(conversion)["spec"]
    assert spec["nodePriorities"][0] == {"nodeName": "node1", "priority": 254}
    assert spec["preempt"] is True
    assert any("initial state MASTER" in d for d in details(conversion, "nopreempt"))


def test_a_value_that_differs_between_nodes_is_reported(tmp_path: Path) -> None:
    conversion = convert(tmp_path, "advert_int 1", "advert_int 2")
    assert vip(conversion)["spec"]["vrrp"]["advertisementInterval"] == "1s"
    assert details(conversion, "advert_int")[-1] == "note: 2s here but 1s on node1: the VirtualIP uses 1s"


def test_a_long_password_is_cut_to_eight_characters_and_different_passwords_are_reported(
    tmp_path: Path,
) -> None:
    auth = "authentication {{\n auth_type PASS\n auth_pass {}\n }}"
    conversion = convert(tmp_path, auth.format("0123456789"), auth.format("01234567xx"))
    (secret,) = [d for d in conversion.documents if d["kind"] == "Secret"]
    assert secret["stringData"] == {"password": "01234567"}  # the same 8 on both nodes: one router
    assert not any("differ" in d for d in details(conversion, "auth_pass"))
    assert any("first 8 characters" in d for d in details(conversion, "auth_pass"))
    other = convert(tmp_path, auth.format("aaaa"), auth.format("bbbb"))
    assert any("differ" in d for d in details(other, "auth_pass"))


def test_a_multicast_group_the_api_refuses_is_an_error_naming_the_field(tmp_path: Path) -> None:
    conversion = convert(tmp_path, "mcast_dst_ip 239.1.1.1", "mcast_dst_ip 239.1.1.1")
    assert conversion.documents == []
    assert conversion.report.failed
    assert any(
        "spec.vrrp.multicastGroup" in d and "224.0.0.0/24" in d for d in details(conversion, "vrrp_instance")
    )


def test_track_interface_and_sync_groups_are_parsed_and_a_missing_member_is_an_error() -> None:
    text = INSTANCE.format(
        extra="track_interface {\n eth1 weight -30 reverse\n eth2\n eth2 weight 5\n }", address="198.18.0.1"
    )
    text += "vrrp_sync_group G { group { VI_1 VI_9 } }\n"
    report = Report()
    config = read_node("n1", parse_text(text), report)
    assert [(t.name, t.weight, t.reverse) for t in config.instances[0].track_interfaces] == [
        ("eth1", -30, True),
        ("eth2", None, False),
    ]
    assert [(g.name, g.instances) for g in config.sync_groups] == [("G", ["VI_1", "VI_9"])]
    assert config.instances[0].sync_group is config.sync_groups[0]
    outcomes = {(e.keyword, e.outcome) for e in report.entries}
    assert ("vrrp_sync_group", Outcome.CONVERTED) in outcomes
    assert ("track_interface", Outcome.DROPPED) in outcomes  # eth2 listed twice
    assert any(e.outcome is Outcome.ERROR and "VI_9" in e.detail for e in report.entries)


def tracked_spec(tmp_path: Path, extra: str, group: str = "") -> tuple[dict[str, Any], list[str]]:
    text = INSTANCE.format(extra=extra, address="198.18.0.100") + group
    (tmp_path / "a.conf").write_text(text)
    (tmp_path / "b.conf").write_text(text)
    conversion = convert_keepalived([("a", tmp_path / "a.conf"), ("b", tmp_path / "b.conf")])
    assert not conversion.report.failed, conversion.report.render()
    vip = conversion.documents[-1]
    keywords = ("track_interface", "track_script")
    lines = [e.render() for e in conversion.report.entries if e.keyword in keywords]
    return vip["spec"], lines


def test_tracked_interfaces_become_spec_track_interfaces_with_keepalived_weights(tmp_path: Path) -> None:
    spec, lines = tracked_spec(tmp_path, "track_interface {\n eth1 weight -30\n eth2\n eth3 weight 10\n }")
    assert spec["trackInterfaces"] == [
        {"name": "eth1", "weight": -30}, {"name": "eth2", "weight": 0}, {"name": "eth3", "weight": 10}
    ]
    assert any("-30 while the link is down" in line for line in lines)
    assert any("+10 while the link is up" in line for line in lines)
    assert "syncGroup" not in spec


def test_own_interface_and_reverse_are_not_tracked_and_say_why(tmp_path: Path) -> None:
    spec, lines = tracked_spec(tmp_path, "track_interface {\n eth0 weight -50\n eth1 weight -5 reverse\n }")
    assert "trackInterfaces" not in spec
    assert any("[dropped]" in line and "own interface" in line for line in lines)
    assert any("[unsupported]" in line and "reverse" in line for line in lines)


def test_in_a_sync_group_weights_are_ignored_as_keepalived_does(tmp_path: Path) -> None:
    # keepalived 2.2.7: "(VI_1) ignoring eth1 tracked interface weight due to SYNC group" and
    # "(VI_1) ignoring tracked script chk with weights due to SYNC group" (weight 0 / script dropped).
    script = 'vrrp_script chk {\n script "/usr/bin/curl -fs http://127.0.0.1/"\n weight -20\n}\n'
    extra = "track_interface {\n eth1 weight -30\n }\n track_script {\n chk\n }"
    group = "vrrp_sync_group VG_1 { group { VI_1 } }\n"
    spec, lines = tracked_spec(tmp_path, extra, script + group)
    assert spec["syncGroup"] == "vg-1"
    assert spec["trackInterfaces"] == [{"name": "eth1", "weight": 0}]
    assert "healthChecks" not in spec
    assert any("[dropped]" in line and "SYNC group" in line for line in lines)
    weighted = group.replace("} }", "} sync_group_tracking_weight }")
    allowed, _ = tracked_spec(tmp_path, extra, script + weighted)
    assert allowed["trackInterfaces"] == [{"name": "eth1", "weight": -30}]
    assert allowed["healthChecks"][0]["weight"] == -20


def test_an_instance_on_one_node_only_has_no_backup(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text(INSTANCE.format(extra="", address="198.18.0.100"))
    (tmp_path / "b.conf").write_text(INSTANCE.format(extra="", address="198.18.0.101"))
    conversion = convert_keepalived([("a", tmp_path / "a.conf"), ("b", tmp_path / "b.conf")])
    assert any("no backup" in e.detail for e in conversion.report.entries)
    assert any(e.outcome is Outcome.ERROR and "VRID 7" in e.detail for e in conversion.report.entries)


def test_a_sync_groups_own_track_interface_goes_to_every_member_and_its_notify_is_reported(
    tmp_path: Path,
) -> None:
    group = (
        "vrrp_sync_group VG_1 {\n group {\n VI_1\n }\n track_interface {\n eth7\n }\n"
        " notify_master /bin/true\n}\n"
    )
    spec, _ = tracked_spec(tmp_path, "", group)
    assert spec["trackInterfaces"] == [{"name": "eth7", "weight": 0}]
    assert spec["syncGroup"] == "vg-1"
    (tmp_path / "c.conf").write_text(INSTANCE.format(extra="", address="198.18.0.100") + group)
    report = convert_keepalived([("c", tmp_path / "c.conf")]).report
    assert any(e.keyword == "notify_master" and e.outcome is Outcome.UNSUPPORTED for e in report.entries)
