"""squall's build: the metadata is in pyproject.toml; this adds the compiled
modules (mypyc and the C passes), built by speedups/squall_build.py when a
C compiler is there, pure Python otherwise (``SQUALL_NO_EXTENSIONS=1`` skips
compiling)."""

import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parent / "speedups"))

from squall_build import setup_arguments  # noqa: E402

setup(**setup_arguments())
