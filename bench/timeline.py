"""Where a failover's time goes: the gap split into phases from a capture on the bridge.

``failover.py --trace PCAP`` records every VRRP advertisement and ARP frame on the
switch during the run. For one trial the phases are, in order:

* ``reference``: the event the backup's timer runs from — the old master's priority-0
  advertisement (planned), or its last advertisement at the normal priority (crash, and
  health where the backup discards the lowered-priority adverts, RFC 9568 §6.4.2);
* ``detect``: reference → the new master's first advertisement (RFC: Skew_Time for
  planned, Master_Down_Interval otherwise; the excess is timer lateness and processing);
* ``announce``: the new master's first advertisement → its first gratuitous ARP (negative when
  the ARP goes first);
* ``client``: that gratuitous ARP → the first probe the new node answered (the client's
  probe cadence, 5 ms, is part of it);
* ``old_last``: reference → the old master's last answer (negative: it stopped answering
  before the reference).

The pcap's times are wall-clock; the probes' are monotonic. :func:`read_frames` puts each
frame on the monotonic clock with the offsets a :class:`chaos_clock.ClockWatch` sampled during
the run, not one taken at the start: this machine's wall clock has been seen to step 8.8 s
ahead in the middle of a run (issue 14, fourteenth pass), after which one offset would place
every later frame seconds late.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chaos_clock import WallClock

FIELDS = ("frame.time_epoch", "eth.src", "ip.src", "vrrp.prio", "arp.isgratuitous")


@dataclass(frozen=True)
class Frame:
    """A VRRP advertisement (``priority`` set) or a gratuitous ARP (``priority`` None)."""

    at: float  # monotonic clock, seconds
    mac: str
    source: str
    priority: int | None


def read_frames(pcap: Path, clock: WallClock) -> list[Frame]:
    """VRRP adverts and gratuitous ARPs of the capture, in order, stamped on the monotonic clock."""
    argv = [
        "tshark",
        "-r",
        str(pcap),
        "-Y",
        "vrrp or arp.isgratuitous == 1",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]
    for name in FIELDS:
        argv += ["-e", name]
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300).stdout
    frames = []
    for line in output.splitlines():
        at, mac, source, priority, _gratuitous = line.split("|")
        frames.append(Frame(clock.to_monotonic(float(at)), mac, source, int(priority) if priority else None))
    return frames


@dataclass(frozen=True)
class TrialTimes:
    """One trial in monotonic seconds: the injection and the client's window."""

    case: str
    injected_at: float
    old_ip: str
    new_ip: str
    new_mac: str
    last_old_answer: float
    first_new_answer: float
    normal_priority: int


def phases(trial: TrialTimes, frames: Sequence[Frame]) -> dict[str, float] | None:
    """The trial's phases in seconds (see the module docstring); None if a frame is missing."""
    after = [f for f in frames if f.at > trial.injected_at - 0.001]
    takeover = next((f for f in after if f.priority is not None and f.source == trial.new_ip), None)
    if takeover is None:
        return None
    old_adverts = [
        f for f in frames if f.priority is not None and f.source == trial.old_ip and f.at < takeover.at
    ]
    if trial.case == "planned":
        reference = next(
            (f for f in old_adverts if f.priority == 0 and f.at >= trial.injected_at - 0.001), None
        )
    else:
        normal = [f for f in old_adverts if f.priority == trial.normal_priority]
        reference = normal[-1] if normal else None
    garp = next((f for f in after if f.priority is None and f.mac == trial.new_mac), None)
    if reference is None or garp is None:
        return None
    return {
        "detect": takeover.at - reference.at,
        "announce": garp.at - takeover.at,
        "client": trial.first_new_answer - garp.at,
        "old_last": trial.last_old_answer - reference.at,
    }
