"""Flood benchmark: spoofed VRRP advertisements from many sources must cost the speaker nothing that grows.

Topology (keepvip.localcluster.lan, flat): two nodes and a client on one bridge, in namespaces this
run creates and removes. node1 (priority 150) and node2 (120) run standalone keepvip
speakers holding 198.18.0.100 with VRRPv3 in the standard group 224.0.0.18 at a 1 s
advertisement interval (keepalived's default). The client writes prebuilt Ethernet
frames onto the LAN: ``--rate`` advertisements per second (default 100,000) for
``--duration`` seconds (default 60), from ``--sources`` random source addresses
(default 60,000, all inside 198.18.0.0/15), in three equal kinds:

* ``lower``: a valid advertisement for the VIP's VRID with priority 100 (below both
  nodes: the master ignores it, the backup too — RFC 9568 §6.4.2/§6.4.3);
* ``wrong_vrid``: a valid advertisement for a VRID nobody runs (dropped and counted);
* ``bad_ttl``: TTL 254 (dropped before anything else, RFC 9568 §7.1).

The frames are built once (keepvip's codec; the checksums are right for each spoofed
source) and written as a pcap. ``--sender tcpreplay`` (default; Debian's ``tcpreplay``,
installed by hack/install-system-deps.sh) replays it in a loop at ``--rate`` packets per
second (``--pps``, sending ``--pps-multi`` frames per timer tick so the pacing does not
cost a core); ``--sender python`` paces an AF_PACKET socket from Python, ``--senders``
processes sharing the rate (about 40,000/s per process on the reference machine).

Reported (text and ``--json``): the rate the sender achieved; each speaker's RSS before,
at its peak during the flood and after, and the growth; state changes during the flood
(target 0); API writes (0 by construction: standalone speakers have no API client);
log lines per second during the flood, total and per reason (target ≤ 1 per reason);
and the drops each speaker counted, by reason.

Usage (root; two cores are plenty, the sender takes one)::

    python bench/flood.py                       # 100,000/s, 60,000 sources, 60 s
    python bench/flood.py --duration 5 --rate 20000
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "netns")]

from speaker_harness import VIP4, SpeakerSet, speaker_set, virtualip  # noqa: E402

from keepvip.localcluster.lan import Lan  # noqa: E402
from keepvip.speaker.vrrp.advertisement import Advertisement  # noqa: E402
from keepvip.speaker.vrrp.codec import encode  # noqa: E402

GROUP = IPv4Address("224.0.0.18")
GROUP_MAC = bytes.fromhex("01005e000012")
VRID = 71
SPOOF_POOL = IPv4Network("198.18.0.0/15")
KINDS = ("lower", "wrong_vrid", "bad_ttl")
FRAME_SIZE = 14 + 20 + 12  # Ethernet + IPv4 + VRRPv3 with one address


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_frame(source: IPv4Address, client_mac: bytes, kind: str) -> bytes:
    """One Ethernet frame carrying a spoofed VRRPv3 advertisement of ``kind``."""
    vrid = 99 if kind == "wrong_vrid" else VRID
    ttl = 254 if kind == "bad_ttl" else 255
    advert = Advertisement(version=3, vrid=vrid, priority=100, interval_cs=100, addresses=(VIP4.ip,))
    payload = encode(advert, source=source, destination=GROUP)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), 0, 0, ttl, 112, 0,
                         source.packed, GROUP.packed)  # fmt: skip
    header = header[:10] + struct.pack("!H", _ip_checksum(header)) + header[12:]
    return GROUP_MAC + client_mac + b"\x08\x00" + header + payload


def build_frames(count: int, client_mac: bytes, avoid: set[IPv4Address], seed: int) -> bytes:
    """``count`` frames, each from its own random source, the kinds interleaved."""
    rng = random.Random(seed)  # noqa: S311 - reproducible spoofed sources, not secrets
    sources: set[IPv4Address] = set()
    while len(sources) < count:
        address = SPOOF_POOL[rng.randrange(1, SPOOF_POOL.num_addresses - 1)]
        if address not in avoid:
            sources.add(address)
    ordered = sorted(sources, key=lambda _: rng.random())
    return b"".join(build_frame(s, client_mac, KINDS[i % len(KINDS)]) for i, s in enumerate(ordered))


def write_pcap(path: Path, frames: bytes) -> None:
    """The frames as a classic pcap file (microsecond timestamps, Ethernet link type)."""
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    records = []
    for index in range(0, len(frames), FRAME_SIZE):
        frame = frames[index : index + FRAME_SIZE]
        records.append(struct.pack("<IIII", 0, index // FRAME_SIZE, len(frame), len(frame)) + frame)
    path.write_bytes(header + b"".join(records))


TCPREPLAY_ACTUAL = re.compile(r"Actual: (\d+) packets .* sent in ([\d.]+) seconds")
TCPREPLAY_FAILED = re.compile(r"Failed packets:\s+(\d+)")


def tcpreplay_argv(ifname: str, pcap: Path, rate: int, duration: float, sources: int) -> list[str]:
    """Replay ``pcap`` at ``rate`` packets/s for ``duration`` s, looping it as often as needed."""
    ceiling = rate if rate > 0 else 1_000_000  # --rate 0: as fast as the machine goes (--topspeed)
    loops = math.ceil(ceiling * duration / sources) + 1
    multi = max(1, rate // 10_000)  # 10,000 timer ticks a second, ``multi`` frames each
    pace = [f"--pps={rate}", f"--pps-multi={multi}"] if rate > 0 else ["--topspeed"]
    return ["tcpreplay", f"--intf1={ifname}", *pace, f"--loop={loops}",
            f"--duration={math.ceil(duration)}", "--preload-pcap", str(pcap)]  # fmt: skip


def tcpreplay_report(output: str) -> dict[str, float]:
    """``sent`` and ``seconds`` from tcpreplay's summary (and ``failed``: refused by the kernel)."""
    actual = TCPREPLAY_ACTUAL.search(output)
    failed = TCPREPLAY_FAILED.search(output)
    if actual is None:
        raise RuntimeError(f"tcpreplay printed no summary:\n{output[-2000:]}")
    return {"sent": int(actual[1]), "seconds": float(actual[2]), "failed": int(failed[1]) if failed else 0}


def send(ifname: str, frames_path: Path, rate: int, duration: float) -> None:
    """The sender (runs inside the client's namespace): paced batches every 10 ms."""
    data = frames_path.read_bytes()
    frames = [data[i : i + FRAME_SIZE] for i in range(0, len(data), FRAME_SIZE)]
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    raw.bind((ifname, 0))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    out = raw.send
    batch = max(1, rate // 100)
    sent, index, start = 0, 0, time.monotonic()
    end = start + duration
    while (now := time.monotonic()) < end:
        due = int((now - start) * rate) + batch
        while sent < due:
            try:
                out(frames[index])
            except BlockingIOError:
                break
            except OSError:  # ENOBUFS: the qdisc is full; count it as not sent
                break
            sent += 1
            index = index + 1 if index + 1 < len(frames) else 0
        time.sleep(0.002)
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - start}), flush=True)


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def drops(speakers: SpeakerSet, node: str) -> dict[str, float]:
    metrics = speakers.metrics(node)
    reasons = ("wrong_vrid", "bad_ttl", "inbox_full", "bad_checksum", "address_mismatch")
    counted = {reason: metrics.value("keepvip_advert_dropped_total", reason=reason) for reason in reasons}
    # Not drops, but what explains them: the adverts the router read, and those it sent
    # (RFC 9568 §6.4.3: a master answers each lower-priority advert with one of its own).
    routed = {"read_by_router": "keepvip_advert_rcvd_total", "sent_by_router": "keepvip_advert_sent_total"}
    return {**counted, **{key: metrics.value(name) for key, name in routed.items()}}


def kernel_drops(lan: Lan, node: str) -> int:
    """Packets the kernel dropped at ``node``'s VRRP raw sockets: the ``drops`` column of
    /proc/net/raw (a raw socket's local "port" is its protocol, 112 = 0x70).

    It counts every packet that arrived while the receive buffer was full, of any kind:
    on the kernel measured (6.18) the buffer is checked before the socket filter runs, so
    wrong-VRID and TTL-254 packets are in it too (the bench's figures add up only that
    way); what the filter rejects while the buffer has room is counted nowhere.
    """
    table = lan.run(node, "cat", "/proc/net/raw").stdout.splitlines()[1:]
    return sum(int(fields[-1]) for line in table if (fields := line.split()) and fields[1].endswith(":0070"))


def rx_packets(lan: Lan, node: str) -> int:
    """Frames ``node``'s LAN interface received: what reached the node, whatever the sender says."""
    ifname = lan.node(node).ifname
    return int(lan.run(node, "cat", f"/sys/class/net/{ifname}/statistics/rx_packets").stdout)


def start_senders(
    args: argparse.Namespace, lan: Lan, ifname: str, pcap: Path, frames_path: Path
) -> list[subprocess.Popen[str]]:
    """The flood's sending processes, in the client's namespace (the LAN ends them by pid)."""
    if args.sender == "tcpreplay":
        argv = tcpreplay_argv(ifname, pcap, args.rate // args.senders, args.duration, args.sources)
        return [lan.spawn("client", argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for _ in range(args.senders)]  # fmt: skip
    argv = [sys.executable, str(Path(__file__).resolve()), "_send", ifname, str(frames_path),
            str(args.rate // args.senders), str(args.duration)]  # fmt: skip
    return [lan.spawn("client", argv, stdout=subprocess.PIPE, text=True) for _ in range(args.senders)]


def sender_report(sender: str, senders: list[subprocess.Popen[str]]) -> dict[str, float]:
    """What the finished senders say they sent (``sent``, ``seconds``, ``failed``)."""
    outputs = [process.stdout.read() if process.stdout else "" for process in senders]
    if sender == "tcpreplay":
        reports = [tcpreplay_report(output) for output in outputs]
    else:
        reports = [json.loads(output or "{}") for output in outputs]
    return {
        "sent": sum(r.get("sent", 0) for r in reports),
        "seconds": max(r.get("seconds", 0) for r in reports),
        "failed": sum(r.get("failed", 0) for r in reports),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the LAN, start the speakers, flood, measure."""
    with Lan.build(nodes=2, client=True) as lan, tempfile.TemporaryDirectory(prefix="keepvip-flood-") as work:
        workdir = Path(work)
        with speaker_set(lan, workdir) as speakers:
            priorities = {"node1": 150, "node2": 120}
            speakers.configure(virtualip("web", vrid=VRID, interval="1s", node_priorities=priorities))
            speakers.start()
            speakers.wait_state("node1", "MASTER", "web", timeout=20)
            speakers.wait_state("node2", "BACKUP", "web")
            client = lan.node("client")
            avoid = {lan.node(n).ipv4.ip for n in ("node1", "node2", "client")} | {VIP4.ip}
            frames_path = workdir / "frames.bin"
            client_mac = bytes.fromhex(client.mac.replace(":", ""))
            frames = build_frames(args.sources, client_mac, avoid, args.seed)
            frames_path.write_bytes(frames)
            pcap = workdir / "frames.pcap"
            write_pcap(pcap, frames)
            nodes = speakers.node_names
            pids = {node: speakers.speakers[node].pid for node in nodes}
            time.sleep(2)  # settle
            before_rss = {node: rss_kib(pid) for node, pid in pids.items()}
            before_drops = {node: drops(speakers, node) for node in nodes}
            before_kernel = {node: kernel_drops(lan, node) for node in nodes}
            before_rx = {node: rx_packets(lan, node) for node in nodes}
            before_lines = {node: len(speakers.log_lines(node)) for node in nodes}
            load_before = Path("/proc/loadavg").read_text().split()[:3]
            started = time.time()
            senders = start_senders(args, lan, client.ifname, pcap, frames_path)
            peak = dict(before_rss)
            while any(sender.poll() is None for sender in senders):
                for node, pid in pids.items():
                    peak[node] = max(peak[node], rss_kib(pid))
                time.sleep(0.5)
            flood_seconds = time.time() - started
            load_after = Path("/proc/loadavg").read_text().split()[:3]
            report = sender_report(args.sender, senders)
            time.sleep(3)  # let the queues drain
            after_rss = {node: rss_kib(pid) for node, pid in pids.items()}
            result: dict[str, Any] = {
                "rate_requested": args.rate,
                "sources": args.sources,
                "duration_s": args.duration,
                "sender": args.sender,
                "senders": args.senders,
                "sent": report.get("sent"),
                "send_failed": report.get("failed"),
                "loadavg_before": load_before,
                "loadavg_after": load_after,
                "rate_achieved": round(report.get("sent", 0) / max(report.get("seconds", 1), 1e-9)),
                "api_writes": 0,  # standalone: the speakers have no API client at all
                "nodes": {},
            }
            for node in nodes:
                lines = speakers.log_lines(node)[before_lines[node]:]
                per_reason = Counter(str(line.get("reason", "-")) for line in lines)
                after_drops = drops(speakers, node)
                result["nodes"][node] = {
                    "rss_before_kib": before_rss[node],
                    "rss_peak_kib": peak[node],
                    "rss_after_kib": after_rss[node],
                    "rss_growth_kib": max(peak[node], after_rss[node]) - before_rss[node],
                    "state_changes": len(speakers.transitions(node, since=started)),
                    "log_lines": len(lines),
                    "log_lines_per_s": round(len(lines) / flood_seconds, 3),
                    "log_lines_per_reason_per_s": {
                        r: round(c / flood_seconds, 3) for r, c in per_reason.items()
                    },
                    "drops": {r: after_drops[r] - before_drops[node][r] for r in after_drops},
                    "kernel_drops": kernel_drops(lan, node) - before_kernel[node],
                    "rx_packets": rx_packets(lan, node) - before_rx[node],
                }
            result["state"] = {node: speakers.state(node, "web") for node in nodes}
            return result


def print_report(result: dict[str, Any]) -> None:
    print(f"flood: {result['sent']:,} adverts sent, {result['rate_achieved']:,}/s achieved "
          f"(requested {result['rate_requested']:,}/s), {result['sources']:,} sources, "
          f"{result['duration_s']} s")  # fmt: skip
    load = f"{' '.join(result['loadavg_before'])} before, {' '.join(result['loadavg_after'])} after"
    print(f"sender {result['sender']}; frames refused by the kernel: {result['send_failed']}; load {load}")
    print(f"API writes caused: {result['api_writes']} (standalone: no API client, by construction)")
    for node, n in result["nodes"].items():
        print(f"{node}: RSS {n['rss_before_kib'] / 1024:.1f} MiB -> peak {n['rss_peak_kib'] / 1024:.1f} MiB, "
              f"after {n['rss_after_kib'] / 1024:.1f} MiB (growth {n['rss_growth_kib'] / 1024:.2f} MiB); "
              f"state changes {n['state_changes']}; log {n['log_lines_per_s']} lines/s "
              f"{n['log_lines_per_reason_per_s']}; drops {n['drops']}; "
              f"kernel drops (receive buffer full) {n['kernel_drops']:,}; "
              f"frames received {n['rx_packets']:,}")  # fmt: skip
    print(f"final states: {result['state']}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_send":
        ifname, path, rate, duration = sys.argv[2:6]
        send(ifname, Path(path), int(rate), float(duration))
        return 0
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--rate", type=int, default=100_000, help="advertisements per second (0: top speed)")
    parser.add_argument("--sources", type=int, default=60_000, help="distinct spoofed source addresses")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of flood")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sender", choices=("tcpreplay", "python"),
                        default="tcpreplay" if shutil.which("tcpreplay") else "python",
                        help="tcpreplay replays a pcap (fast); python paces an AF_PACKET socket")  # fmt: skip
    parser.add_argument("--senders", type=int, default=1, help="sending processes sharing the rate")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    result = run(args)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
