"""Compatibility home of ``websocket_mask`` (Tornado ships it as a C extension).

Squall's masking is fast in pure Python (a big-integer XOR for small payloads,
``bytes.translate`` on strided slices for large ones), so this module simply
names that routine.
"""

from squall._ws._mask import mask as websocket_mask

__all__ = ["websocket_mask"]
