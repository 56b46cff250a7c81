"""The chaos run's daemons: the same VIPs as keepvip documents or as keepalived instances.

Both implementations get the same VRRP settings (VRRPv3, standard group 224.0.0.18,
VRID = VIP index, the same per-node priorities, pre-emption, advertisement interval),
the same health check and the same split-brain guard:

* health check: a TCP connect to the node's *checked service* on port 8081 (a second
  ``keepvip.localcluster.webserver``), interval 1 s, timeout 1 s, rise 1, fall 1, with the VIP's
  weight (0 = FAULT while failing). keepalived runs it as a ``vrrp_script`` (bash
  ``/dev/tcp``) tracked by the instance with the same weight.
* arbiter: keepvip's ``arbiter`` pinging the gateway 198.18.0.250 (the client namespace),
  interval 1 s, timeout 0.9 s (keepvip requires the timeout below the interval: the next
  probe leaves before the last one is given up on), fall 2, rise 2. keepalived has no
  arbiter; its established equivalent is a ``vrrp_script`` running ``ping -W 1`` to the
  gateway with weight 0 (failing → FAULT), which is what the keepalived side runs, with
  the same interval, fall and rise.

The daemon processes themselves are driven through tests/netns/keepalived_harness.py
(:class:`KeepvipDaemon`, :class:`KeepalivedDaemon`): one way to start, stop and crash
them in the project.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos_schedule import VipPlan
from keepalived_harness import KeepalivedDaemon, KeepvipDaemon, VrrpDaemon, VrrpScript, virtualip_document

from keepvip.localcluster.lan import Host, Lan

WEB_PORT = 8080  # what the client probes (failover.Prober's port)
CHECKED_PORT = 8081  # what the health check probes (the "checked service")
GATEWAY = "198.18.0.250"  # the client namespace plays the gateway
CHECK_INTERVAL_S = 1
ARBITER_INTERVAL_S = 1
ARBITER_FALL = 2
ARBITER_RISE = 2
ARBITER_TIMEOUT_S = 0.9  # keepvip's: below the interval; keepalived's ping -W is 1 s


def arbiter_detection(interval_s: float = ARBITER_INTERVAL_S) -> float:
    """Worst time from losing the gateway to the arbiter declaring it lost (the larger
    timeout of the two implementations: keepalived's 1 s ``ping -W``)."""
    return ARBITER_FALL * interval_s + max(ARBITER_TIMEOUT_S, ARBITER_INTERVAL_S)


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def keepvip_documents(vips: Sequence[VipPlan], interval: float) -> list[dict[str, Any]]:
    """The standalone file every keepvip speaker reads (per-node priorities by nodeName)."""
    documents = []
    for vip in vips:
        checks = []
        if vip.check_weight is not None:
            checks.append(
                {
                    "name": "service",
                    "tcp": {"port": CHECKED_PORT},
                    "interval": f"{CHECK_INTERVAL_S}s",
                    "timeout": f"{CHECK_INTERVAL_S}s",
                    "rise": 1,
                    "fall": 1,
                    "weight": vip.check_weight,
                }
            )
        document = virtualip_document(
            vip.name,
            vip.address,
            vrid=vip.vrid,
            priority=min(vip.priorities.values()),
            version=3,
            interval=_duration(interval),
            preempt=vip.preempt,
            health_checks=checks,
        )
        document["spec"]["nodePriorities"] = [
            {"nodeName": node, "priority": priority} for node, priority in sorted(vip.priorities.items())
        ]
        document["spec"]["arbiter"] = {
            "gateway": GATEWAY,
            "interval": f"{ARBITER_INTERVAL_S}s",
            "timeout": f"{ARBITER_TIMEOUT_S * 1000:.0f}ms",
            "fall": ARBITER_FALL,
            "rise": ARBITER_RISE,
        }
        documents.append(document)
    return documents


@dataclass(frozen=True)
class KeepalivedChaosConfig:
    """A keepalived.conf with one ``vrrp_instance`` per VIP (the harness's config has one)."""

    host: Host
    vips: tuple[VipPlan, ...]
    interval: float
    check_script: Path
    gateway_script: Path

    def render(self) -> str:
        service = VrrpScript("service", str(self.check_script), CHECK_INTERVAL_S, CHECK_INTERVAL_S, 1, 1, 0)
        gateway = VrrpScript(
            "gateway", str(self.gateway_script), ARBITER_INTERVAL_S, ARBITER_INTERVAL_S,
            ARBITER_RISE, ARBITER_FALL, 0,
        )  # fmt: skip
        lines = [
            "global_defs {",
            f"    router_id {self.host.name}",
            "    vrrp_version 3",
            "    script_user root",
            "}",
            "",
        ]
        lines += service.render() + gateway.render()
        for vip in self.vips:
            lines += [
                f"vrrp_instance VI_{vip.index} {{",
                "    state BACKUP",
                f"    interface {self.host.ifname}",
                f"    virtual_router_id {vip.vrid}",
                f"    priority {vip.priorities[self.host.name]}",
                f"    advert_int {self.interval:g}",
                *(["    nopreempt"] if not vip.preempt else []),
                "    virtual_ipaddress {",
                f"        {vip.address} dev {self.host.ifname}",
                "    }",
                "    track_script {",
                "        gateway",
                *([f"        service weight {vip.check_weight}"] if vip.check_weight is not None else []),
                "    }",
                "}",
                "",
            ]
        return "\n".join(lines)


def write_scripts(workdir: Path) -> tuple[Path, Path]:
    """keepalived's two check scripts (the service connect and the gateway ping)."""
    check = workdir / "check_service.sh"
    check.write_text(f"#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/{CHECKED_PORT}\n")
    gateway = workdir / "ping_gateway.sh"
    gateway.write_text(f"#!/bin/bash\nexec ping -n -q -c 1 -W {ARBITER_INTERVAL_S} -I eth0 {GATEWAY}\n")
    for path in (check, gateway):
        path.chmod(0o755)
    return check, gateway


def make_daemon(
    implementation: str, lan: Lan, host: Host, workdir: Path, *, vips: tuple[VipPlan, ...], interval: float
) -> VrrpDaemon:
    """One node's daemon for ``implementation`` (not started)."""
    if implementation == "keepvip":
        return KeepvipDaemon(lan, host, workdir, keepvip_documents(vips, interval))
    check, gateway = write_scripts(workdir)
    # KeepalivedDaemon only calls config.render(): the multi-instance config stands in.
    config = KeepalivedChaosConfig(host, vips, interval, check, gateway)
    return KeepalivedDaemon(lan, host, workdir, config)  # type: ignore[arg-type]


def vrrp_pids(daemon: VrrpDaemon) -> list[int]:
    """The pids that speak VRRP for ``daemon``: each daemon's supervising parent and VRRP child.

    A SIGSTOP must reach the process that sends advertisements: keepalived's parent only
    supervises, its VRRP child (pid file ``-r``) does the work; keepvip's speaker runs VRRP
    in the child of the process started (:mod:`keepvip.speaker.supervisor`). Both are
    frozen, and both starved.
    """
    pids = []
    if daemon.pid is not None:
        pids.append(daemon.pid)
    if isinstance(daemon, KeepalivedDaemon):
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            pids.append(int(daemon.pid_files["-r"].read_text().split()[0]))
    if isinstance(daemon, KeepvipDaemon):
        pids += daemon.vrrp_children
    return pids


def signal_all(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def thaw(daemon: VrrpDaemon) -> None:
    """SIGCONT every VRRP process of ``daemon`` (safe to call when nothing is frozen)."""
    signal_all(vrrp_pids(daemon), signal.SIGCONT)
