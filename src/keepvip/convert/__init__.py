"""``keepvip convert``: turn another tool's configuration into keepvip resources.

The keepalived converter reads one keepalived.conf per node and writes VirtualIP
documents (plus a Secret for a PASS password) and a report of every keyword it
converted or dropped. Its parts each do one job: :mod:`.syntax` (keepalived's
lexical rules and ``include``), :mod:`.keepalived` (the instances a file declares),
:mod:`.join` (which nodes' instances are one virtual router), :mod:`.scripts`
(recognising what a ``vrrp_script`` checks), :mod:`.mapper` (VirtualIP documents,
validated by the API model) and :mod:`.report`.
"""
