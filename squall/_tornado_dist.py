"""The ``tornado`` distribution Squall provides, and the alias of a whole environment.

`tornado_distribution` is what `importlib.metadata` finds for ``tornado``
while `squall.compat`'s import hook is installed. `install_alias` writes a
``.pth`` file and a ``tornado-6.6.1.dist-info`` into site-packages, so that
every program of the environment imports Squall for ``tornado`` and pip
sees tornado 6.6.1 installed; `alias_state` tells whether pip has since
replaced it by a real Tornado, for which packages, and what to do.
`squall.compat` re-exports the public names; see its docstring.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import pathlib
import re
import sys
from typing import TYPE_CHECKING, NamedTuple, Optional, Union

if TYPE_CHECKING:
    import importlib.metadata

#: The Tornado release whose public API Squall implements.
TORNADO_VERSION = "6.6.1"
TORNADO_VERSION_INFO = (6, 6, 1, 0)

ALIAS = "tornado"
TARGET = "squall"

INSTALLER = "squall.compat"
"""What the ``INSTALLER`` of a tornado distribution provided by Squall says."""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def metadata_text() -> str:
    squall = importlib.import_module(TARGET)
    return (
        "Metadata-Version: 2.1\n"
        f"Name: {ALIAS}\n"
        f"Version: {TORNADO_VERSION}\n"
        f"Summary: Tornado's API, provided by Squall {squall.version} "
        "(squall.compat); not the tornado project\n"
        "Home-page: https://pypi.org/project/squall/\n"
        f"Requires-Dist: {TARGET}\n"
    )


def tornado_distribution() -> importlib.metadata.Distribution:
    """The ``tornado`` distribution that the alias presents to `importlib.metadata`.

    Instrumentation checks that a ``tornado`` distribution in the version
    range it supports is installed before it patches anything
    (OpenTelemetry's ``_instruments = ("tornado >= 5.1.1",)``); while the
    alias is installed, ``importlib.metadata.version("tornado")`` answers
    `TORNADO_VERSION`, the API level Squall implements. Its ``METADATA``
    says that Squall provides it; it lists no files and no entry points.
    """
    import importlib.metadata

    class TornadoBySquall(importlib.metadata.Distribution):
        def read_text(self, filename: str) -> Optional[str]:
            if filename == "METADATA":
                return metadata_text()
            if filename == "INSTALLER":
                return INSTALLER + "\n"
            return None

        def locate_file(self, path: Union[str, os.PathLike[str]]) -> pathlib.Path:
            squall = importlib.import_module(TARGET)
            return pathlib.Path(squall.__path__[0]).parent / path

    return TornadoBySquall()


ALIAS_PTH = "squall-tornado-alias.pth"
"""The file ``--install-alias`` writes into site-packages."""

# One line that site.py runs at every start-up (a .pth line that begins with
# "import" is executed): a finder that imports nothing until a tornado name
# is looked up, then hands over to _alias_find_spec.
PTH_LINE = (
    "import sys; sys.meta_path.insert(0, type('SquallTornadoAlias', (), {'_squall_pth': True, "
    "'find_spec': staticmethod(lambda name, path=None, target=None: "
    "__import__('squall.compat').compat._alias_find_spec(name, path, target) "
    "if name == 'tornado' or name.startswith('tornado.') else None)})())\n"
)


def real_tornado() -> Optional[str]:
    """Where a real Tornado is installed (looked up past any alias), or None."""
    import importlib.metadata

    spec = importlib.machinery.PathFinder.find_spec(ALIAS)
    if spec is not None:
        return str(spec.origin or list(spec.submodule_search_locations or ["?"])[0])
    for dist in importlib.metadata.distributions(name=ALIAS):
        if not is_our_distribution(dist):
            return f"the distribution tornado {dist.version}"
    return None


def is_our_distribution(dist: importlib.metadata.Distribution) -> bool:
    return (dist.read_text("INSTALLER") or "").strip() == INSTALLER


def dist_info_name() -> str:
    return f"{ALIAS}-{TORNADO_VERSION}.dist-info"


def install_alias(site_dir: Optional[str] = None) -> str:
    """Makes ``import tornado`` give Squall in every program of this environment.

    Writes `ALIAS_PTH`, and a ``tornado-6.6.1.dist-info`` whose ``METADATA``
    says Squall provides it: `importlib.metadata` (and so instrumentation
    that checks which tornado is installed) and pip then see tornado 6.6.1
    installed. Its ``RECORD`` lists the ``.pth`` file, so ``pip uninstall
    tornado`` removes the alias whole, as does pip replacing it by a real
    Tornado (``pip install tornado==X``).

    Args:
        site_dir: the site-packages directory (this interpreter's by default).

    Returns:
        The path of the ``.pth`` file written.

    Raises:
        RuntimeError: a real Tornado is installed; the message says how to proceed.
    """
    import sysconfig

    site = site_dir or sysconfig.get_paths()["purelib"]
    found = real_tornado()
    if found is not None:
        pins = pinned_by([site] if site_dir else sys.path)
        why = f" ({'; '.join(pins)})" if pins else ""
        raise RuntimeError(
            f"a real Tornado is installed ({found}){why}: `pip uninstall tornado` first"
            + (f", and see {KEEP_DOC}" if pins else "")
        )
    dist_info = os.path.join(site, dist_info_name())
    os.makedirs(dist_info, exist_ok=True)
    files = {"METADATA": metadata_text(), "INSTALLER": INSTALLER + "\n"}
    for name, text in files.items():
        with open(os.path.join(dist_info, name), "w") as f:
            f.write(text)
    recorded = [ALIAS_PTH] + [f"{dist_info_name()}/{name}" for name in (*files, "RECORD")]
    with open(os.path.join(dist_info, "RECORD"), "w") as f:
        f.writelines(f"{path},,\n" for path in recorded)
    target = os.path.join(site, ALIAS_PTH)
    with open(target, "w") as f:
        f.write(PTH_LINE)
    # Not in RECORD: it outlives pip's removal of the alias, so that
    # alias_state can tell "replaced by a Tornado" from "never wanted".
    with open(os.path.join(site, ALIAS_MARK), "w") as f:
        f.write(MARK_TEXT)
    return target


def uninstall_alias(site_dir: Optional[str] = None) -> Optional[str]:
    """Removes what `install_alias` wrote; returns its path, or None if it was not there."""
    import shutil
    import sysconfig

    site = site_dir or sysconfig.get_paths()["purelib"]
    dist_info = os.path.join(site, dist_info_name())
    try:
        with open(os.path.join(dist_info, "INSTALLER")) as f:
            ours = f.read().strip() == INSTALLER
    except OSError:
        ours = False
    if ours:
        shutil.rmtree(dist_info, ignore_errors=True)
    try:
        os.remove(os.path.join(site, ALIAS_MARK))
    except FileNotFoundError:
        pass
    target = os.path.join(site, ALIAS_PTH)
    try:
        os.remove(target)
    except FileNotFoundError:
        return None
    return target


ALIAS_MARK = "squall-tornado-alias.wanted"
"""Written beside `ALIAS_PTH` by `install_alias`, removed by `uninstall_alias` only."""

MARK_TEXT = (
    "The tornado alias of squall (python -m squall.compat --install-alias) is wanted in\n"
    "this environment. If pip replaced it by a real Tornado, python -m squall.compat\n"
    "--status says so and what to do; --uninstall-alias removes this file.\n"
)

KEEP_DOC = "'A package that pins an older Tornado' in Squall's docs/migrating.md"

# What to do when pip replaced the alias (the docs say the same at KEEP_DOC).
REMEDY = (
    "To serve Tornado programs on Squall again: `pip uninstall tornado` then "
    "`python -m squall.compat --install-alias`. To install a package that pins an older "
    "Tornado without losing the alias: `pip install --no-deps PACKAGE` (then its other "
    "requirements), or `pip install -c constraints.txt PACKAGE` with a constraints file "
    "holding `tornado==6.6.1`, which makes pip refuse the conflict instead of replacing the "
    "alias. If this Tornado is what you want here, `python -m squall.compat "
    "--uninstall-alias` forgets the alias."
)


class AliasState(NamedTuple):
    """What `alias_state` found: ``state`` and a message for people.

    ``state`` is ``"active"`` (the alias is installed), ``"replaced"`` (it
    was, and a real Tornado took its place: pip installed one for a
    package that requires an older Tornado), ``"removed"`` (it was, and is
    gone, with no Tornado in its place) or ``"absent"`` (it was never
    installed here).
    """

    state: str
    message: str


def alias_state(site_dir: Optional[str] = None) -> AliasState:
    """Whether this environment's ``tornado`` alias (``install_alias``, ``--install-alias``) still holds.

    Args:
        site_dir: the site-packages directory (this interpreter's by
            default; then a real Tornado is looked for on all of `sys.path`).
    """
    import sysconfig

    site = site_dir or sysconfig.get_paths()["purelib"]
    paths = [site] if site_dir else sys.path
    has_pth = os.path.exists(os.path.join(site, ALIAS_PTH))
    wanted = os.path.exists(os.path.join(site, ALIAS_MARK))
    if has_pth:
        return AliasState(
            "active",
            f"the tornado alias is installed in {site}: `import tornado` "
            "gives Squall in every program of this environment",
        )
    if not wanted:
        return AliasState("absent", f"no tornado alias is installed in {site}")
    real = real_tornado_in(paths)
    if real is None:
        return AliasState(
            "removed",
            f"the tornado alias of {site} was removed (`pip uninstall tornado`?) and no Tornado "
            "took its place: `import tornado` fails in this environment. "
            "`python -m squall.compat --install-alias` puts it back; "
            "`--uninstall-alias` forgets it.",
        )
    pins = pinned_by(paths)
    why = f", installed by pip for {'; '.join(pins)}" if pins else ""
    return AliasState(
        "replaced",
        f"the tornado alias of {site} was replaced by {real}{why}: `import tornado` gives that "
        "Tornado, not Squall, in this environment's programs (except under "
        "`python -m squall.compat` or `SQUALL_TORNADO_ALIAS=1 squall run`). " + REMEDY,
    )


def real_tornado_in(paths: list[str]) -> Optional[str]:
    """``"tornado 6.4.2 (/venv/.../tornado)"``: a real Tornado on ``paths``, or None."""
    import importlib.metadata

    spec = importlib.machinery.PathFinder.find_spec(ALIAS, paths)
    if spec is None:
        return None
    where = spec.origin or list(spec.submodule_search_locations or ["?"])[0]
    where = os.path.dirname(where) if where.endswith("__init__.py") else where
    for dist in importlib.metadata.distributions(name=ALIAS, path=paths):
        if not is_our_distribution(dist):
            return f"tornado {dist.version} ({where})"
    return f"a tornado package ({where})"


def pinned_by(paths: list[str]) -> list[str]:
    """``["mitmproxy 11.0.0 requires tornado<=6.4.2"]``: the installed packages
    whose requirements exclude the Tornado release Squall provides."""
    import importlib.metadata

    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
    except ImportError:  # without packaging: every bounded requirement is named
        SpecifierSet = None  # type: ignore[assignment,misc]  # noqa: N806
        InvalidSpecifier = ValueError  # type: ignore[assignment,misc]  # noqa: N806
    found: set[str] = set()
    for dist in importlib.metadata.distributions(path=paths):
        name = dist.metadata["Name"] or "?"
        if normalize(name) == ALIAS:
            continue
        for req in dist.requires or ():
            spec, _, marker = req.partition(";")
            if "extra" in marker:
                continue  # an optional feature's requirement
            match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(\[[^]]*\])?\s*\(?([^)]*)\)?\s*$", spec)
            if match is None or normalize(match.group(1)) != ALIAS:
                continue
            bound = match.group(3).strip()
            if not bound:
                continue
            if SpecifierSet is not None:
                try:
                    if TORNADO_VERSION in SpecifierSet(bound):
                        continue
                except InvalidSpecifier:
                    pass
            found.add(f"{name} {dist.version} requires tornado{bound}")
    return sorted(found)
