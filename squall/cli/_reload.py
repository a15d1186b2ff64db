"""``--reload``: notice edits to source files by polling their modification times.

Polling needs no extra package and no inotify limits; a scan of a source
tree every half second costs little next to a development server.
"""

from __future__ import annotations

import fnmatch
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
        includes: glob patterns of more files to watch (``*.jinja``,
            ``templates/*``), matched against the file's name and its path
            relative to the watched directory.
        excludes: glob patterns of files and directories to leave out,
            matched the same way; they win over ``includes``.
    """

    def __init__(
        self, dirs: Iterable[str], includes: Iterable[str] = (), excludes: Iterable[str] = ()
    ) -> None:
        self.dirs = [os.path.abspath(d) for d in dirs]
        self.includes = list(includes)
        self.excludes = list(excludes)
        self._stop = threading.Event()
        self._mtimes = self._scan()

    @staticmethod
    def _matches(patterns: list[str], name: str, rel: str) -> bool:
        return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in patterns)

    def _wanted(self, name: str, rel: str) -> bool:
        if self.excludes and self._matches(self.excludes, name, rel):
            return False
        return name.endswith(_SUFFIXES) or self._matches(self.includes, name, rel)

    def _scan(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for top in self.dirs:
            for root, dirs, files in os.walk(top):
                here = os.path.relpath(root, top)
                here = "" if here == "." else here + os.sep
                dirs[:] = [
                    d
                    for d in dirs
                    if d not in _SKIP_DIRS
                    and not d.startswith(".")
                    and not (self.excludes and self._matches(self.excludes, d, here + d))
                ]
                for name in files:
                    if self._wanted(name, here + name):
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
