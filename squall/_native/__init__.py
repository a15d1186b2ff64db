"""Where the compiled build's modules are installed (by ``pip install``, never
imported by hand): ``manifest.json`` and the extension modules that
`squall._compiled` loads under the pure modules' names. Empty in a checkout."""
