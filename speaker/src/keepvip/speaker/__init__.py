"""The VRRP speaker (one per node).

`lean` is called first, before anything here imports pyroute2: a speaker then loads
only the parts of pyroute2 it uses (see :mod:`keepvip.speaker.net.pyroute`).
"""

from keepvip.speaker.net.pyroute import lean

lean()
