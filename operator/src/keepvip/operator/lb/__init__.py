"""``Service type: LoadBalancer`` from VirtualIPPools: parse → decide → apply → status.

Pure modules: :mod:`.service` (a Service body → what it asks for), :mod:`.pools`
(address arithmetic, the hashed sticky choice), :mod:`.records` (the VirtualIP that
records one allocation), :mod:`.plan` (every decision of a pass), :mod:`.report`
(Service conditions, Events, pool status). :mod:`.controller` is the only part that
talks to the API (through :mod:`keepvip.operator.kube`).
"""
