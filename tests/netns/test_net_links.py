"""Link up/down events from rtnetlink, as the speaker's FAULT input sees them."""

from __future__ import annotations

import asyncio
import select

import pytest

from keepvip.localcluster.lan import Lan
from keepvip.speaker.net.links import LinkEvent, LinkMonitor

pytestmark = pytest.mark.timeout(30)


def events_within(monitor: LinkMonitor, timeout: float = 1.0) -> list[LinkEvent]:
    """Every change the monitor reports until ``timeout`` passes without one."""
    found: list[LinkEvent] = []
    while select.select([monitor.fileno()], [], [], timeout)[0]:
        found.extend(monitor.read_events())
    return found


def test_monitor_knows_every_links_state_from_the_start(lan: Lan) -> None:
    with lan.inside(lan.nodes[0]):
        monitor = LinkMonitor()
    with monitor:
        assert monitor.is_up("eth0") is True
        assert monitor.is_up("lo") is True
        assert monitor.is_up("nope0") is None


def test_setting_the_interface_down_and_up_reports_down_then_up(lan: Lan) -> None:
    node = lan.nodes[0]
    with lan.inside(node):
        monitor = LinkMonitor()
    with monitor:
        lan.set_link(node, up=False)
        down = events_within(monitor, 0.5)
        lan.set_link(node, up=True)
        up = events_within(monitor, 0.5)
        state = monitor.is_up("eth0")

    assert [(e.ifname, e.up) for e in down] == [("eth0", False)]
    assert [(e.ifname, e.up) for e in up] == [("eth0", True)]
    assert state is True


def test_losing_carrier_at_the_switch_reports_the_link_down(lan: Lan) -> None:
    node = lan.nodes[1]
    with lan.inside(node):
        monitor = LinkMonitor()
    with monitor:
        lan.set_port(node, up=False)  # the cable is pulled: eth0 stays admin-up
        down = events_within(monitor, 0.5)
        lan.set_port(node, up=True)
        up = events_within(monitor, 0.5)

    assert [(e.ifname, e.up) for e in down] == [("eth0", False)]
    assert [(e.ifname, e.up) for e in up] == [("eth0", True)]


def test_changes_other_than_up_or_down_are_not_reported(lan: Lan) -> None:
    node = lan.nodes[0]
    with lan.inside(node):
        monitor = LinkMonitor()
    with monitor:
        lan.run(node, "ip", "link", "set", "eth0", "mtu", "1400")
        lan.run(node, "ip", "link", "set", "eth0", "promisc", "on")
        quiet = events_within(monitor, 0.3)
        lan.set_link(node, up=False)  # and the monitor is still listening
        loud = events_within(monitor, 0.5)

    assert quiet == []
    assert [(e.ifname, e.up) for e in loud] == [("eth0", False)]


def test_an_interface_that_is_deleted_while_up_is_reported_down(lan: Lan) -> None:
    node = lan.nodes[0]
    lan.run(node, "ip", "link", "add", "side0", "type", "veth", "peer", "name", "side1")
    lan.run(node, "ip", "link", "set", "side0", "up")
    lan.run(node, "ip", "link", "set", "side1", "up")
    with lan.inside(node):
        monitor = LinkMonitor()
    with monitor:
        assert monitor.is_up("side0") is True
        lan.run(node, "ip", "link", "del", "side0")
        gone = events_within(monitor, 0.5)

    assert ("side0", False) in [(e.ifname, e.up) for e in gone]


def test_monitor_is_an_async_iterator_that_waits_for_the_next_change(lan: Lan) -> None:
    node = lan.nodes[2]
    with lan.inside(node):
        monitor = LinkMonitor()

    async def watch() -> LinkEvent:
        iterator = aiter(monitor)
        waiting = asyncio.ensure_future(anext(iterator))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # nothing changed yet
        await asyncio.to_thread(lan.set_port, node, up=False)
        return await asyncio.wait_for(waiting, 2)

    with monitor:
        event = asyncio.run(watch())

    assert (event.ifname, event.up) == ("eth0", False)
