"""The forum demo's code, imported by ``demos/forum/app.py``."""
