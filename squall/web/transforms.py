"""Output transforms: filters applied to every response body chunk on its way out.

An application lists transform classes (``Application(transforms=...)``; the
``compress_response`` setting adds `GZipContentEncoding`). Each request gets
new instances; `RequestHandler.flush` passes the status, the headers and the
first chunk through `OutputTransform.transform_first_chunk`, and each later
chunk through `OutputTransform.transform_chunk`.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from squall.httputil import HTTPHeaders, HTTPServerRequest

__all__ = ["GZipContentEncoding", "OutputTransform"]


class OutputTransform:
    """A transform that leaves the response as it is; the base of all transforms.

    Args:
        request: the request whose response goes through the transform.
    """

    def __init__(self, request: HTTPServerRequest) -> None:
        pass

    def transform_first_chunk(
        self, status_code: int, headers: HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, HTTPHeaders, bytes]:
        """Transforms the status, headers and first body chunk before they are written.

        Args:
            finishing: whether this chunk is also the last one.
        """
        return status_code, headers, chunk

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        """Transforms a later body chunk (``finishing`` for the last one)."""
        return chunk


class GZipContentEncoding(OutputTransform):
    """Compresses text responses with gzip for clients that accept it.

    Compressed: responses whose type is ``text/*`` or one of `CONTENT_TYPES`,
    that have no ``Content-Encoding`` yet, and that are streamed or at least
    `MIN_LENGTH` bytes long. ``Vary: Accept-Encoding`` is added to every
    response, compressed or not, since caches must key on it either way.
    Streamed responses stay one gzip stream, flushed at each chunk.
    """

    CONTENT_TYPES = frozenset(
        {
            "application/javascript",
            "application/x-javascript",
            "application/xml",
            "application/atom+xml",
            "application/json",
            "application/xhtml+xml",
            "image/svg+xml",
        }
    )
    """Non-``text/`` types worth compressing."""

    GZIP_LEVEL = 6
    """zlib compression level: the usual balance of speed and size."""

    MIN_LENGTH = 1024
    """Shorter complete bodies are sent as they are: gzip would barely shrink them."""

    def __init__(self, request: HTTPServerRequest) -> None:
        super().__init__(request)
        self._gzipping = "gzip" in request.headers.get("Accept-Encoding", "")
        self._compressor: Optional[zlib._Compress] = None

    def _compressible_type(self, ctype: str) -> bool:
        return ctype.startswith("text/") or ctype in self.CONTENT_TYPES

    def transform_first_chunk(
        self, status_code: int, headers: HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, HTTPHeaders, bytes]:
        """Decides whether to compress, adjusts the headers and compresses the chunk."""
        if "Vary" in headers:
            headers["Vary"] += ", Accept-Encoding"
        else:
            headers["Vary"] = "Accept-Encoding"
        if self._gzipping:
            ctype = headers.get("Content-Type", "").split(";")[0].strip()
            self._gzipping = (
                self._compressible_type(ctype)
                and (not finishing or len(chunk) >= self.MIN_LENGTH)
                and "Content-Encoding" not in headers
            )
        if self._gzipping:
            headers["Content-Encoding"] = "gzip"
            # wbits 16 + MAX_WBITS: a gzip header and trailer around the deflate stream.
            self._compressor = zlib.compressobj(self.GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            chunk = self.transform_chunk(chunk, finishing)
            if "Content-Length" in headers:
                # The length changed; only a body sent in one piece knows the new one.
                if finishing:
                    headers["Content-Length"] = str(len(chunk))
                else:
                    del headers["Content-Length"]
        return status_code, headers, chunk

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        """Compresses a chunk; a sync flush makes it decodable before the next one arrives."""
        if not self._gzipping or self._compressor is None:
            return chunk
        data = self._compressor.compress(chunk)
        data += self._compressor.flush(zlib.Z_FINISH if finishing else zlib.Z_SYNC_FLUSH)
        if finishing:
            self._compressor = None
        return data
