"""Where the tests find squall's own files: in the squall that is imported (this
checkout's, or an installed one when the suite runs against an install, as
``make test-compiled`` and ``make dist`` do), never relative to the tests."""

from __future__ import annotations

from pathlib import Path

import squall

SQUALL_DIR = Path(squall.__file__).resolve().parent
CERTS = SQUALL_DIR / "_certs"
