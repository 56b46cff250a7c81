"""keepvip: virtual IPs kept alive by VRRP, reconciled by a Kubernetes operator.

The top-level folders ``api/``, ``operator/``, ``speaker/`` and ``localcluster/`` are this
package's subpackages (mapped by ``pyproject.toml``; the symlinks under ``keepvip/`` let
mypy, import-linter and an editable install see the same tree).
"""

__version__ = "0.1.0"
