"""``python -m keepvip`` is the ``keepvip`` command."""

from keepvip.cli import main

raise SystemExit(main())
