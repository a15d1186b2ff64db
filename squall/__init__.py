"""Squall: a fast, Tornado-compatible web framework and asynchronous networking library."""

version = "0.1.0"
version_info = (0, 1, 0, 0)

__all__ = ["version", "version_info"]
