"""The ``tornado`` alias of every ``squall`` process (see the package's docstring).

Apart from the package so that a module under it (``_otel``) can make the
alias without importing the package that imports it.
"""

from __future__ import annotations

__all__ = ["TORNADO_ALIAS_ENV", "tornado_alias"]

import logging
import os

log = logging.getLogger("squall.general")

#: The environment variable for the ``tornado`` alias: 1 on, 0 off, unset: when
#: no Tornado is installed.
TORNADO_ALIAS_ENV = "SQUALL_TORNADO_ALIAS"


def tornado_alias() -> bool:
    """Make ``import tornado`` give Squall in this process, if it should; True if it does.

    It should when `TORNADO_ALIAS_ENV` says 1, or is unset and no Tornado
    is installed. The decision is written back to the environment, so that
    workers and the application's subprocesses make the same one.
    """
    import importlib.util

    from squall import compat

    wanted = os.environ.get(TORNADO_ALIAS_ENV, "").strip()
    if wanted == "0":
        return False
    if wanted != "1" and not compat.installed():
        try:
            found = importlib.util.find_spec("tornado") is not None
        except (ImportError, ValueError):
            found = False
        if found:
            state = compat.alias_state()
            if state.state == "replaced":
                # The environment's alias was replaced by pip: the app would
                # run on that Tornado, which nobody asked for. Say so.
                log.warning("%s", state.message)
            return False  # a real Tornado (or an alias installed venv-wide)
    try:
        compat.install()
    except RuntimeError as exc:
        log.warning("%s: not making 'tornado' an alias of squall: %s", TORNADO_ALIAS_ENV, exc)
        return False
    os.environ[TORNADO_ALIAS_ENV] = "1"
    return True
