"""Evidence for terminado's ``UniqueTermTests::test_max_terminals`` (tests/COMPAT.md).

A pytest plugin, loaded by hand (``-p terminado_late_hangup`` with this
directory on ``PYTHONPATH``), that sends terminado's SIGHUP to a closed
terminal's shell 30 ms late, as a slower shell or a busier machine would
exit late. The test then fails on Tornado 6.6.1 as on Squall, every run:
whichever library delivers the close to the test's client before the shell
has exited loses the race, so the test measures the shell, not the library.
"""

from __future__ import annotations

import signal
from typing import Any

_DELAY = 0.03


def pytest_configure(config: Any) -> None:
    import terminado.management as management
    from tornado.ioloop import IOLoop

    original = management.UniqueTermManager.client_disconnected

    def client_disconnected(self: Any, websocket: Any) -> None:
        terminal = websocket.terminal
        if terminal is None:
            original(self, websocket)
            return
        IOLoop.current().call_later(_DELAY, terminal.killpg, signal.SIGHUP)

    management.UniqueTermManager.client_disconnected = client_disconnected
