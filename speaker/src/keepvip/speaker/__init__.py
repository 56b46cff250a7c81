"""The VRRP speaker (one per node).

`lean` and `without_init` run first, before anything here imports pyroute2 or
prometheus_client: a speaker then loads only the parts of them it uses (see
:mod:`keepvip.speaker.lean_imports`).
"""

from keepvip.speaker.lean_imports import without_init
from keepvip.speaker.net.pyroute import lean

lean()
without_init("prometheus_client")
