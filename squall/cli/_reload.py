"""``--reload``: notice edits to source files by polling their modification times.

Polling needs no extra package and no inotify limits; a scan of a source
tree every half second costs little next to a development server.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Optional

__all__ = ["Watcher"]

_SUFFIXES = (".py", ".pyi", ".html", ".json", ".yaml", ".yml", ".toml", ".cfg", ".ini")
_SKIP_DIRS = {".git", ".hg", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache"}


class Watcher:
    """Watches the files under ``dirs`` whose names end with a source suffix.

    Args:
        dirs: directories to scan, recursively.
    """

    def __init__(self, dirs: Iterable[str]) -> None:
        self.dirs = [os.path.abspath(d) for d in dirs]
        self._stop = threading.Event()
        self._mtimes = self._scan()

    def _scan(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for top in self.dirs:
            for root, dirs, files in os.walk(top):
                dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
                for name in files:
                    if name.endswith(_SUFFIXES):
                        path = os.path.join(root, name)
                        try:
                            found[path] = os.stat(path).st_mtime_ns
                        except OSError:
                            pass
        return found

    def changed(self) -> Optional[str]:
        """A file added, removed or modified since the last call, or None."""
        now = self._scan()
        before = self._mtimes
        self._mtimes = now
        for path, mtime in now.items():
            if before.get(path) != mtime:
                return os.path.relpath(path)
        for path in before:
            if path not in now:
                return os.path.relpath(path)
        return None

    def wait_for_change(self, interval: float) -> Optional[str]:
        """Poll every ``interval`` seconds until a change, or until `stop`."""
        while not self._stop.is_set():
            path = self.changed()
            if path is not None:
                return path
            self._stop.wait(interval)
        return None

    def stop(self) -> None:
        """Make `wait_for_change` return."""
        self._stop.set()
