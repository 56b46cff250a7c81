"""keepvip's release version.

``keepvip`` itself is a namespace package (PEP 420) with one portion per part of the
repository (``src/``, ``api/src/``, ``operator/src/``, ``speaker/src/``; the development
tools in ``localcluster/src/``), so it has no ``__init__.py`` to carry this.
"""

__version__ = "0.1.0"
