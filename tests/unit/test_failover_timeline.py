"""``bench/failover.py --trace``: a failover's phases from a capture whose wall clock stepped.

The capture stamps frames with the wall clock, the client's probes use the monotonic one.
The phases used to be computed with one offset taken at the start of the run; after the
8.8 s step of the wall clock seen in issue 14's fourteenth pass that would place every later
frame 8.8 s late and no trial would find its frames. :func:`timeline.read_frames` now puts
each frame on the monotonic clock with the offset in force when it was stamped. The frames
are written by scapy and read back by tshark, as in a run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vrrp import VRRPv3
from scapy.utils import wrpcap

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench")]

from chaos_clock import WallClock  # noqa: E402
from timeline import TrialTimes, phases, read_frames  # noqa: E402

EPOCH = 1_796_166_062.0  # wall - monotonic before the step
STEP = 8.8  # the wall clock jumps ahead at monotonic 100.05
SAMPLES = tuple((99.0 + i / 10, EPOCH + (STEP if 99.0 + i / 10 > 100.05 else 0.0)) for i in range(31))
OLD, NEW = ("198.18.0.11", "02:00:00:00:00:11"), ("198.18.0.12", "02:00:00:00:00:12")
VIP = "198.18.0.100"


def advert(node: tuple[str, str], priority: int, monotonic: float) -> Ether:
    ip, mac = node
    vrrp = VRRPv3(vrid=51, priority=priority, ipcount=1, adv=100, addrlist=[VIP])
    frame = Ether(src=mac, dst="01:00:5e:00:00:12") / IP(src=ip, dst="224.0.0.18", ttl=255, proto=112) / vrrp
    frame.time = EPOCH + monotonic + (STEP if monotonic > 100.05 else 0.0)
    return frame


def gratuitous_arp(node: tuple[str, str], monotonic: float) -> Ether:
    _, mac = node
    frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=mac, psrc=VIP, hwdst=mac, pdst=VIP)
    frame.time = EPOCH + monotonic + (STEP if monotonic > 100.05 else 0.0)
    return frame


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    """The old master's last advertisements before the step, the takeover after it."""
    pcap = tmp_path / "trace.pcap"
    wrpcap(str(pcap), [advert(OLD, 150, 99.8), advert(OLD, 150, 99.9), advert(NEW, 120, 100.27)])
    wrpcap(str(pcap), [gratuitous_arp(NEW, 100.272)], append=True)
    return pcap


def trial() -> TrialTimes:
    return TrialTimes(
        case="crash", injected_at=99.95, old_ip=OLD[0], new_ip=NEW[0], new_mac=NEW[1],
        last_old_answer=99.93, first_new_answer=100.281, normal_priority=150,
    )  # fmt: skip


def test_frames_after_a_step_of_the_wall_clock_land_on_the_monotonic_clock(capture: Path) -> None:
    frames = read_frames(capture, WallClock(SAMPLES))

    assert [round(frame.at, 3) for frame in frames] == [99.8, 99.9, 100.27, 100.272]
    assert [frame.priority for frame in frames] == [150, 150, 120, None]


def test_the_phases_of_a_takeover_across_the_step_are_its_own(capture: Path) -> None:
    split = phases(trial(), read_frames(capture, WallClock(SAMPLES)))

    assert split is not None
    assert split["detect"] == pytest.approx(0.37, abs=1e-3)  # last advert -> the new master's first
    assert split["announce"] == pytest.approx(0.002, abs=1e-3)
    assert split["client"] == pytest.approx(0.009, abs=1e-3)
    assert split["old_last"] == pytest.approx(0.03, abs=1e-3)


def test_one_offset_taken_at_the_start_would_place_the_takeover_seconds_late(capture: Path) -> None:
    # The old method: the takeover and its ARP are placed 8.8 s late, the client's answers are not.
    split = phases(trial(), read_frames(capture, WallClock.fixed(EPOCH)))

    assert split is not None
    assert split["detect"] == pytest.approx(0.37 + STEP, abs=1e-3)
    assert split["client"] == pytest.approx(0.009 - STEP, abs=1e-3)
