"""The VirtualIP model and the VRRP core agree on every range they share.

Admission checks the model; the speaker builds a `RouterConfig` from what was admitted.
A bound the model lets through and the core refuses (``preemptDelay: 20m`` was one)
stores a VirtualIP that every speaker then fails. Each bound is probed from both sides:
the last value inside is taken by both, the first value outside is refused by the model.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

import pytest

from keepvip.api.parse import InvalidVirtualIP, parse_virtualip
from keepvip.speaker.vrrp.config import RouterConfig

VIP = IPv4Address("198.18.0.100")


def admitted(**spec: Any) -> bool:
    body = {"metadata": {"name": "range"}, "spec": {"addresses": ["198.18.0.100/24"], **spec}}
    try:
        parse_virtualip(body)
    except InvalidVirtualIP:
        return False
    return True


def core_accepts(**config: Any) -> bool:
    try:
        RouterConfig(
            vrid=config.pop("vrid", 1), addresses=(VIP,), primary_address=IPv4Address("198.18.0.1"), **config
        )
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("spec", "config", "inside"),
    [
        ({"preemptDelay": "1000s"}, {"preempt_delay": 1000.0}, True),
        ({"preemptDelay": "1000001ms"}, {"preempt_delay": 1000.001}, False),
        ({"vrrp": {"vrid": 1}}, {"vrid": 1}, True),
        ({"vrrp": {"vrid": 255}}, {"vrid": 255}, True),
        ({"vrrp": {"vrid": 256}}, {"vrid": 256}, False),
        ({"vrrp": {"vrid": 0}}, {"vrid": 0}, False),
        ({"priority": 1}, {"priority": 1}, True),
        ({"priority": 254}, {"priority": 254}, True),
        ({"priority": 0}, {"priority": 0}, False),
        ({"vrrp": {"advertisementInterval": "10ms"}}, {"interval_cs": 1}, True),
        ({"vrrp": {"advertisementInterval": "40950ms"}}, {"interval_cs": 4095}, True),
        ({"vrrp": {"advertisementInterval": "40960ms"}}, {"interval_cs": 4096}, False),
        (
            {"vrrp": {"version": 2, "advertisementInterval": "255s"}},
            {"version": 2, "interval_cs": 25500},
            True,
        ),
        (
            {"vrrp": {"version": 2, "advertisementInterval": "256s"}},
            {"version": 2, "interval_cs": 25600},
            False,
        ),
    ],
)
def test_the_model_admits_only_what_the_vrrp_core_runs(
    spec: dict[str, Any], config: dict[str, Any], inside: bool
) -> None:
    assert admitted(**spec) is inside
    if inside:
        assert core_accepts(**config)
    else:
        assert not core_accepts(**config)
