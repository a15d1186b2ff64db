"""The applications whose own test suites the harness runs on Tornado and on Squall.

Adding an application is one entry in `APPS`. Its tests are taken from its
sdist at the pinned version, so the sdist must ship them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class App:
    """One application: what to download, what to install with it, how to test it."""

    #: Distribution name on the package index.
    name: str
    #: The pinned release whose sdist (and tests) are used.
    version: str
    #: Requirements installed beside the app for its tests (its "test" extra,
    #: less linters and release tools that the tests do not import).
    test_deps: tuple[str, ...] = ()
    #: Arguments to pytest, run from the unpacked sdist's directory.
    pytest_args: tuple[str, ...] = ("tests",)
    #: Wall-time limit for one side's whole suite, in seconds.
    suite_timeout: int = 30 * 60
    #: Per-test limit (pytest-timeout), in seconds; 0 keeps the app's own.
    test_timeout: int = 0
    #: Extra environment variables for the test run.
    env: dict[str, str] = field(default_factory=dict)


APPS: dict[str, App] = {
    app.name: app
    for app in (
        App(
            name="jupyter_server",
            version="2.21.1",
            test_deps=(
                "ipykernel",
                "pytest-console-scripts",
                "pytest-timeout",
                "pytest-jupyter[server]>=0.7",
                "pytest>=7.0,<10",
                "requests",
                "flaky",
            ),
            suite_timeout=50 * 60,
            test_timeout=60,
        ),
        App(
            name="terminado",
            version="0.18.1",
            test_deps=("pytest>=7.0", "pytest-timeout"),
            suite_timeout=10 * 60,
            test_timeout=60,
        ),
    )
}
