"""The entry point of squall's pytest plugin (``pytest11``: ``squall``); the
plugin itself is `squall.pytest_plugin`. PYTEST_DONT_REWRITE

pytest marks every top-level package of a plugin's distribution for
assertion rewriting before it loads the plugin. squall is the library under
test, not test code: this module, outside the package, takes the mark off
before anything imports squall, so its modules load as Python loads them
(their asserts, loaders and namespaces as without pytest).
"""

import sys

for _finder in sys.meta_path:
    _marked = getattr(_finder, "_must_rewrite", None)
    if isinstance(_marked, set):
        _marked.discard("squall")

from squall.pytest_plugin import (  # noqa: E402
    TornadoStyleFixtures,
    pytest_addoption,
    pytest_configure,
    pytest_load_initial_conftests,
    pytest_unconfigure,
    squall_client,
    ws_connect,
)

__all__ = [
    "TornadoStyleFixtures",
    "pytest_addoption",
    "pytest_configure",
    "pytest_load_initial_conftests",
    "pytest_unconfigure",
    "squall_client",
    "ws_connect",
]
