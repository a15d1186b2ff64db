"""``python -m squall run TARGET``: the same as the ``squall`` command."""

from squall.cli import main

raise SystemExit(main())
