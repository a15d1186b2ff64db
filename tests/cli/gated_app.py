"""sample_apps.app, imported only once the test opens the FIFO named by SQUALL_TEST_GATE."""

from __future__ import annotations

import os

# Opening a FIFO for reading waits for a writer: the worker is "starting" until then.
with open(os.environ["SQUALL_TEST_GATE"], "rb") as gate:
    gate.read()

from sample_apps import app  # noqa: E402

__all__ = ["app"]
