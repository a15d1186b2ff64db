"""Compiled build of Squall's sans-I/O cores (``squall._h1``, ``squall._ws``).

Nothing here is imported by hand: ``import squall`` finds this package, checks
that its build matches the installed squall's sources (see ``manifest.json``,
written at build time) and then loads the compiled modules in place of the
pure-Python ones. ``squall.speedups`` reports what was loaded and why not.
"""
