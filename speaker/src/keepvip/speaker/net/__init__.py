"""Thin adapters between the speaker and the Linux network stack.

Each module does one job in bytes and addresses and knows nothing of VRRP semantics
(the sans-IO core in :mod:`keepvip.speaker.vrrp` decides; the runtime glues):

* :mod:`.vrrp_socket` raw IP-protocol-112 sockets (TTL 255, groups, receive metadata);
* :mod:`.netlink` one ordered line of rtnetlink requests per socket (no EBUSY, no hang);
* :mod:`.addresses` VIPs added/removed over rtnetlink, marked, leftovers swept;
* :mod:`.interfaces` interface facts: subnet lookup, primary IPv4, link-local, link state;
* :mod:`.announce` gratuitous ARP and unsolicited Neighbour Advertisements;
* :mod:`.links` link up/down events (link down = FAULT);
* :mod:`.marks` the ``IFA_PROTO`` value that marks keepvip's addresses.
"""
