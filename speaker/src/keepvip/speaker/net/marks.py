"""How keepvip recognises the addresses it added, across restarts.

DESIGN.md: "On start, the speaker removes VIPs it owns from a previous run", so a
crashed (SIGKILLed) speaker never leaves a stale VIP answering ARP. The kernel keeps
the mark for us: since Linux 6.3 every address carries an ``IFA_PROTO`` byte naming
who added it (``ip -d addr`` shows it as ``proto``), like ``RTPROT_*`` on routes.
Values 0..3 are the kernel's own (unspec, kernel_lo, kernel_ra, kernel_ll, see
/etc/iproute2/rt_addrprotos); keepvip takes a private value from the free range.
Unlike a label it works for IPv6 too, and unlike a state file it cannot drift from
what is really configured. Older kernels drop it silently; :mod:`.ownership` then
falls back to a state file plus the IPv4 label.
"""

from __future__ import annotations

from typing import Final

# 0x6B is ASCII "k": memorable in `ip -d addr` output ("proto 107"), far from the
# kernel's 0..3 and from the small values other daemons pick.
KEEPVIP_ADDRESS_PROTO: Final = 0x6B

IFNAMSIZ: Final = 16  # <linux/if.h>, including the terminating NUL

# Kernels without IFA_PROTO: every IPv4 VIP also carries the address label
# ``<interface>:kv`` (``ip addr`` shows it), so that a state file's entry is only believed
# for an address that still looks like ours (:mod:`.ownership`).
LABEL_SUFFIX: Final = ":kv"


def address_label(ifname: str) -> str:
    """The IPv4 label keepvip gives its VIPs on ``ifname``: ``eth0:kv`` (at most 15 bytes)."""
    room = IFNAMSIZ - 1 - len(LABEL_SUFFIX)
    return ifname.encode()[:room].decode(errors="ignore") + LABEL_SUFFIX
