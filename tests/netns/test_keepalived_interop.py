"""keepvip and keepalived 2.2.7 (Debian's) in one virtual router, and tshark as a third opinion.

A keepvip node and a keepalived node share one VRID in keepalived's default multicast
group (224.0.0.18 / ff02::12), which is what users who mix the two run. For each
protocol variant both directions are specified: whoever has the higher priority is
master; when it stops (SIGTERM, priority 0) the other takes over; when it comes back it
pre-empts. A client on the LAN checks the result the way a user would: the VIP answers
ping from the MAC of the node that should hold it.

The RFC 9568 checksum form (RFC 9568 §5.2.8: VRRPv3 over IPv4 without the pseudo-header)
cannot form one router with keepalived 2.2.7: that release always sends the pseudo-header
form and refuses the other ("Invalid VRRPv3 checksum"); ``v3_checksum_as_v2`` arrived in
a later keepalived. What 2.2.7 allows is specified instead: keepvip sending the RFC 9568
form still *accepts* keepalived's form (receive accepts both), and keepalived's refusal
of keepvip's form is asserted, so the test fails — and must be upgraded to the full
scenario — the day the installed keepalived learns the option.

tshark decodes every advertisement keepvip sends (each variant, including priority 0 at
shutdown) and every gratuitous ARP / unsolicited NA without an expert warning. Its
VRRPv3 dissector checks IPv4 checksums with the pseudo-header unless the preference
``vrrp.v3_checksum_as_in_v2`` is on, so the RFC 9568 variant is decoded with that
preference (Good) and, as a control, without it (Bad, and only that variant).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_interface
from pathlib import Path
from typing import Any

import pytest
from keepalived_harness import (
    BACKUP,
    MASTER,
    KeepalivedConfig,
    KeepalivedDaemon,
    KeepvipDaemon,
    VrrpDaemon,
    secret_document,
    vip_holders,
    virtualip_document,
    wait_for_state,
)
from speaker_harness import holds_for

from keepvip.localcluster.lan import Host, Lan

pytestmark = pytest.mark.timeout(90)

VRID = 51
HIGH, LOW = 150, 100
METRICS_PORT = 9481
SECRET_REF = ("keepvip-system", "vrrp-auth", "password")
SHARED_KEY = "s3cr3t"  # a throw-away PASS key for the test LAN
OTHER_KEY = "0th3r"


@dataclass(frozen=True)
class Variant:
    """One protocol flavour, spelled for both implementations."""

    id: str
    vip: str
    version: int
    interval: str  # keepvip duration
    advert_int: float  # keepalived seconds
    checksum: str | None = None
    password: str | None = None

    @property
    def timeout(self) -> float:
        """Generous bound for one election: Master_Down (< 4 intervals) plus start-up."""
        return 4 * self.advert_int + 4.0


V2 = Variant("v2", "198.18.0.100/24", 2, "1s", 1.0)
V2_PASS = Variant("v2-pass", "198.18.0.100/24", 2, "1s", 1.0, password=SHARED_KEY)
V3_IPV4 = Variant("v3-ipv4-pseudo-header", "198.18.0.100/24", 3, "100ms", 0.1, checksum="pseudoHeader")
V3_IPV6 = Variant("v3-ipv6", "2001:db8::100/64", 3, "100ms", 0.1)
V3_RFC9568 = Variant("v3-ipv4-rfc9568", "198.18.0.100/24", 3, "100ms", 0.1, checksum="rfc9568")
INTEROP = [V2, V2_PASS, V3_IPV4, V3_IPV6]


# -- building the pair ----------------------------------------------------------------------------


def keepvip_on(
    lan: Lan,
    host: Host,
    workdir: Path,
    variant: Variant,
    priority: int,
    *,
    password: str | None = None,
    vrid: int = VRID,
) -> KeepvipDaemon:
    password = password if password is not None else variant.password
    documents: list[dict[str, Any]] = []
    if password is not None:
        documents.append(secret_document(*SECRET_REF, password))
    documents.append(
        virtualip_document(
            "web",
            variant.vip,
            vrid=vrid,
            priority=priority,
            version=variant.version,
            interval=variant.interval,
            checksum=variant.checksum,
            password_secret=SECRET_REF if password is not None else None,
        )
    )
    return KeepvipDaemon(lan, host, workdir, documents, metrics_port=METRICS_PORT)


def keepalived_on(
    lan: Lan, host: Host, workdir: Path, variant: Variant, priority: int, *, password: str | None = None
) -> KeepalivedDaemon:
    config = KeepalivedConfig(
        router_id=host.name,
        interface=host.ifname,
        vrid=VRID,
        priority=priority,
        addresses=(ip_interface(variant.vip),),
        version=variant.version,
        advert_int=variant.advert_int,
        auth_pass=password if password is not None else variant.password,
    )
    return KeepalivedDaemon(lan, host, workdir, config)


@pytest.fixture
def stopped_at_end() -> Iterator[list[VrrpDaemon]]:
    """Daemons appended here are stopped (by pid) after the test, before the LAN goes."""
    daemons: list[VrrpDaemon] = []
    yield daemons
    for daemon in daemons:
        if daemon.running:
            daemon.stop()


def client_reaches_vip_at(lan: Lan, vip: str, holder: Host, timeout: float = 3.0) -> None:
    """The client pings the VIP and its neighbour table maps the VIP to ``holder``'s MAC."""
    address = ip_interface(vip).ip
    client = lan.client
    assert client is not None
    deadline = time.monotonic() + timeout
    seen: str | None = None
    while time.monotonic() < deadline:
        ping = lan.run(client, "ping", "-c", "1", "-W", "1", str(address), check=False)
        seen = lan.neighbours(client).get(address)
        if ping.returncode == 0 and seen == holder.mac:
            return
        time.sleep(0.1)
    raise AssertionError(f"client sees {address} at {seen}, expected {holder.name} ({holder.mac})")


def sole_holder(lan: Lan, variant: Variant, holder: Host, timeout: float = 1.0) -> None:
    """Only ``holder`` has the VIP, within ``timeout``: a daemon logs its new state a few
    milliseconds before the kernel has removed the address it gives up."""
    deadline = time.monotonic() + timeout
    holders = vip_holders(lan, variant.vip, lan.nodes)
    while holders != [holder.name] and time.monotonic() < deadline:
        time.sleep(0.02)
        holders = vip_holders(lan, variant.vip, lan.nodes)
    assert holders == [holder.name]


def assert_master(lan: Lan, variant: Variant, master: VrrpDaemon, backup: VrrpDaemon) -> None:
    wait_for_state(master, MASTER, variant.timeout)
    wait_for_state(backup, BACKUP, variant.timeout)
    sole_holder(lan, variant, master.host)
    client_reaches_vip_at(lan, variant.vip, master.host)


def keepvip_drops(daemon: KeepvipDaemon) -> dict[str, float]:
    """keepvip_advert_dropped_total by reason."""
    drops: dict[str, float] = {}
    for line in daemon.metrics().splitlines():
        if line.startswith("keepvip_advert_dropped_total{"):
            labels, value = line.rsplit(" ", 1)
            reason = labels.split('reason="', 1)[1].split('"', 1)[0]
            drops[reason] = drops.get(reason, 0.0) + float(value)
    return drops


# -- one router, both directions ------------------------------------------------------------------


@pytest.mark.parametrize("variant", INTEROP, ids=lambda v: v.id)
def test_keepalived_takes_over_from_a_stopped_keepvip_master_and_keepvip_preempts_back(
    lan: Lan, tmp_path: Path, stopped_at_end: list[VrrpDaemon], variant: Variant
) -> None:
    node1, node2 = lan.nodes[:2]
    keepvip = keepvip_on(lan, node1, tmp_path, variant, HIGH)
    keepalived = keepalived_on(lan, node2, tmp_path, variant, LOW)
    stopped_at_end += [keepvip, keepalived]
    keepalived.start()
    keepvip.start()
    fails_over_and_back(lan, variant, master=keepvip, backup=keepalived)
    assert keepvip_drops(keepvip) == {}, keepvip.log_text()


@pytest.mark.parametrize("variant", INTEROP, ids=lambda v: v.id)
def test_keepvip_takes_over_from_a_stopped_keepalived_master_and_keepalived_preempts_back(
    lan: Lan, tmp_path: Path, stopped_at_end: list[VrrpDaemon], variant: Variant
) -> None:
    node1, node2 = lan.nodes[:2]
    keepvip = keepvip_on(lan, node1, tmp_path, variant, LOW)
    keepalived = keepalived_on(lan, node2, tmp_path, variant, HIGH)
    stopped_at_end += [keepvip, keepalived]
    keepvip.start()
    keepalived.start()
    fails_over_and_back(lan, variant, master=keepalived, backup=keepvip)
    assert keepvip_drops(keepvip) == {}, keepvip.log_text()


def fails_over_and_back(lan: Lan, variant: Variant, *, master: VrrpDaemon, backup: VrrpDaemon) -> None:
    """The higher priority wins; stopped, the other takes over; restarted, it pre-empts back."""
    assert_master(lan, variant, master, backup)
    master.stop()
    assert_master_alone(lan, variant, backup)
    master.start()
    assert_master(lan, variant, master, backup)


def assert_master_alone(lan: Lan, variant: Variant, survivor: VrrpDaemon) -> None:
    wait_for_state(survivor, MASTER, variant.timeout)
    sole_holder(lan, variant, survivor.host)
    client_reaches_vip_at(lan, variant.vip, survivor.host)


def test_a_mismatched_pass_password_does_not_form_one_router(
    lan: Lan, tmp_path: Path, stopped_at_end: list[VrrpDaemon]
) -> None:
    node1, node2 = lan.nodes[:2]
    keepvip = keepvip_on(lan, node1, tmp_path, V2_PASS, HIGH, password=SHARED_KEY)
    keepalived = keepalived_on(lan, node2, tmp_path, V2_PASS, LOW, password=OTHER_KEY)
    stopped_at_end += [keepvip, keepalived]
    keepalived.start()
    keepvip.start()

    wait_for_state(keepvip, MASTER, V2_PASS.timeout)
    wait_for_state(keepalived, MASTER, V2_PASS.timeout)
    # Two more adverts each way: nobody yields.
    assert holds_for(lambda: (keepvip.transitions()[-1].state, keepalived.transitions()[-1].state)
                     == (MASTER, MASTER), 2.5)  # fmt: skip
    assert sorted(vip_holders(lan, V2_PASS.vip, lan.nodes)) == ["node1", "node2"]
    # Each side refuses the other's password. keepvip counts what it drops; keepalived
    # logs it. keepalived 2.2.7 re-arms its own advert timer on *every* packet it reads
    # while master (vrrp_scheduler.c, vrrp_dispatcher_read → vrrp_init_instance_sands),
    # so when keepvip's adverts land just before keepalived's timer, keepalived stays
    # silent for as long as the phases line up: only its first advert is certain.
    drops = keepvip_drops(keepvip)
    assert drops.get("auth_mismatch", 0) >= 1, drops
    assert set(drops) == {"auth_mismatch"}, drops
    refusals = keepalived.log_text().count("received an invalid passwd")
    assert refusals >= 2, keepalived.log_text()


# -- RFC 9568 checksum form against keepalived 2.2.7 ----------------------------------------------


def test_keepvip_sending_the_rfc9568_form_accepts_keepalived_pseudo_header_adverts(
    lan: Lan, tmp_path: Path, stopped_at_end: list[VrrpDaemon]
) -> None:
    node1, node2 = lan.nodes[:2]
    keepvip = keepvip_on(lan, node1, tmp_path, V3_RFC9568, LOW)
    keepalived = keepalived_on(lan, node2, tmp_path, V3_RFC9568, HIGH)
    stopped_at_end += [keepvip, keepalived]
    keepalived.start()
    keepvip.start()

    assert_master(lan, V3_RFC9568, keepalived, keepvip)
    stays_backup = lambda: keepvip.transitions()[-1].state == BACKUP and keepvip_drops(keepvip) == {}  # noqa: E731
    assert holds_for(stays_backup, 1.0), keepvip.log_text()


def test_keepalived_2_2_7_refuses_the_rfc9568_form_so_both_sides_become_master(
    lan: Lan, tmp_path: Path, stopped_at_end: list[VrrpDaemon]
) -> None:
    node1, node2 = lan.nodes[:2]
    keepvip = keepvip_on(lan, node1, tmp_path, V3_RFC9568, HIGH)
    keepalived = keepalived_on(lan, node2, tmp_path, V3_RFC9568, LOW)
    stopped_at_end += [keepvip, keepalived]
    keepalived.start()
    keepvip.start()

    wait_for_state(keepvip, MASTER, V3_RFC9568.timeout)
    wait_for_state(keepalived, MASTER, V3_RFC9568.timeout)
    assert holds_for(lambda: keepalived.transitions()[-1].state == MASTER, 0.5)
    assert "Invalid VRRPv3 checksum" in keepalived.log_text()


# -- tshark's opinion of what keepvip sends -------------------------------------------------------

CAPTURED = [
    (11, V2),
    (12, V2_PASS),
    (13, V3_IPV4),
    (14, V3_RFC9568),
    (15, V3_IPV6),
]


def _all_variants_file(number: int) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = [secret_document(*SECRET_REF, SHARED_KEY)]
    for vrid, variant in CAPTURED:
        vip = ip_interface(variant.vip)
        address = f"{vip.network.network_address + number * 16 + vrid}/{vip.network.prefixlen}"
        documents.append(
            virtualip_document(
                f"{variant.id}-{number}",
                address,
                vrid=vrid,
                priority=100,
                version=variant.version,
                interval=variant.interval,
                checksum=variant.checksum,
                password_secret=SECRET_REF if variant.password else None,
            )
        )
    return documents


def tshark_rows(pcap: Path, display_filter: str, fields: list[str], *prefs: str) -> list[list[str]]:
    argv = ["tshark", "-r", str(pcap), "-Y", display_filter, "-T", "fields", "-E", "separator=|"]
    for pref in prefs:
        argv += ["-o", pref]
    for name in fields:
        argv += ["-e", name]
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    return [line.split("|") for line in output.splitlines()]


@pytest.fixture(scope="module")
def keepvip_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every variant, sent by a keepvip master, recorded on the bridge (start, adverts, shutdown)."""
    workdir = tmp_path_factory.mktemp("capture")
    pcap = workdir / "keepvip.pcap"
    with Lan.build(nodes=1, client=False) as lan:
        node = lan.nodes[0]
        keepvip = KeepvipDaemon(lan, node, workdir, _all_variants_file(1))
        with lan.capture(lan.switch, pcap, "ip proto 112 or ip6 proto 112 or arp or icmp6", ifname="br0"):
            keepvip.start()
            try:
                deadline = time.monotonic() + 15
                while sum(t.state == MASTER for t in keepvip.transitions()) < len(CAPTURED):
                    assert time.monotonic() < deadline, keepvip.log_text()
                    time.sleep(0.1)
                time.sleep(2.5)  # at least two v2 adverts after the last takeover
            finally:
                assert keepvip.stop() == 0
    return pcap


VRRP_FIELDS = ["vrrp.virt_rtr_id", "vrrp.prio", "vrrp.checksum.status", "_ws.expert", "_ws.malformed"]
GOOD = "1"
BAD = "0"


def _by_vrid(rows: list[list[str]]) -> dict[int, list[list[str]]]:
    found: dict[int, list[list[str]]] = {}
    for row in rows:
        found.setdefault(int(row[0]), []).append(row)
    return found


def test_tshark_finds_every_keepvip_advertisement_well_formed_with_a_good_checksum(
    keepvip_capture: Path,
) -> None:
    rows = _by_vrid(tshark_rows(keepvip_capture, "vrrp", VRRP_FIELDS))
    assert sorted(rows) == [vrid for vrid, _ in CAPTURED]
    for vrid, variant in CAPTURED:
        adverts = rows[vrid]
        assert len(adverts) >= 3, variant.id
        assert {row[1] for row in adverts} >= {"100", "0"}, (
            f"{variant.id}: adverts and the priority-0 goodbye"
        )
        assert all(row[4] == "" for row in adverts), f"{variant.id}: malformed"
        if variant is V3_RFC9568:
            continue
        assert {(row[2], row[3]) for row in adverts} == {(GOOD, "")}, variant.id


def test_tshark_checks_the_rfc9568_form_only_with_its_v3_checksum_as_in_v2_preference(
    keepvip_capture: Path,
) -> None:
    default = _by_vrid(tshark_rows(keepvip_capture, "vrrp", VRRP_FIELDS))
    as_v2 = _by_vrid(tshark_rows(keepvip_capture, "vrrp", VRRP_FIELDS, "vrrp.v3_checksum_as_in_v2:TRUE"))

    rfc9568 = next(vrid for vrid, variant in CAPTURED if variant is V3_RFC9568)
    assert {(row[2], row[3]) for row in as_v2[rfc9568]} == {(GOOD, "")}
    assert {row[2] for row in default[rfc9568]} == {BAD}
    bad_by_default = {vrid for vrid, adverts in default.items() if any(row[2] != GOOD for row in adverts)}
    assert bad_by_default == {rfc9568}


def test_tshark_decodes_keepvip_gratuitous_arps_and_neighbour_advertisements_without_warnings(
    keepvip_capture: Path,
) -> None:
    garps = tshark_rows(
        keepvip_capture,
        "arp.isgratuitous == 1",
        ["arp.opcode", "arp.src.proto_ipv4", "_ws.expert", "_ws.malformed"],
    )
    ipv4_vips = {
        str(ip_interface(doc["spec"]["addresses"][0]).ip)
        for doc in _all_variants_file(1)
        if doc["kind"] == "VirtualIP" and ":" not in doc["spec"]["addresses"][0]
    }
    assert {row[1] for row in garps} == ipv4_vips
    assert {row[0] for row in garps} == {"1", "2"}, "request and reply forms"
    assert all(row[2:] == ["", ""] for row in garps), garps

    unsolicited = tshark_rows(
        keepvip_capture,
        "icmpv6.type == 136",
        [
            "icmpv6.nd.na.target_address",
            "icmpv6.nd.na.flag.o",
            "icmpv6.nd.na.flag.s",
            "icmpv6.checksum.status",
            "_ws.expert",
            "_ws.malformed",
        ],
    )
    v6 = next(
        doc
        for doc in _all_variants_file(1)
        if doc["kind"] == "VirtualIP" and ":" in doc["spec"]["addresses"][0]
    )
    target = str(ip_interface(v6["spec"]["addresses"][0]).ip)
    assert unsolicited, "no unsolicited NA captured"
    assert {tuple(row) for row in unsolicited} == {(target, "1", "0", GOOD, "", "")}
