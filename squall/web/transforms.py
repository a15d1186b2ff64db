"""Output transforms: filters applied to every response body chunk on its way out.

An application lists transform classes (``Application(transforms=...)``; the
``compress_response`` setting adds `GZipContentEncoding`, which despite its
Tornado name also speaks br and zstd). Each request gets
new instances; `RequestHandler.flush` passes the status, the headers and the
first chunk through `OutputTransform.transform_first_chunk`, and each later
chunk through `OutputTransform.transform_chunk`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from squall._content_coding import Encoder, available_codings, choose_coding, make_encoder

if TYPE_CHECKING:
    from squall.httputil import HTTPHeaders, HTTPServerRequest

__all__ = ["GZipContentEncoding", "OutputTransform"]

_INSTALLED = available_codings()
# Clients send a handful of distinct Accept-Encoding values: decide each once.
_choose = functools.lru_cache(maxsize=256)(choose_coding)


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
    """Compresses text responses for clients that accept it: gzip, br or zstd.

    The coding is chosen from the request's ``Accept-Encoding`` (highest
    qvalue; ties go to the order of ``ENCODINGS``) among those allowed and
    installed: gzip always, ``br`` with the ``brotli`` extra, ``zstd`` with
    the ``zstd`` extra. The ``compress_response_encodings`` application
    setting (or `with_encodings`) picks which are allowed, best first.

    Compressed: responses whose type is ``text/*`` or one of ``CONTENT_TYPES``,
    that have no ``Content-Encoding`` yet, that are not a range of the body
    (no ``Content-Range``: Tornado compresses those, and a client cannot
    decode the part it gets), and that are streamed or at least
    ``MIN_LENGTH`` bytes long. ``Vary: Accept-Encoding`` is added to every
    response, compressed or not, since caches must key on it either way.
    Streamed responses stay one compressed stream, flushed at each chunk.
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
    """Shorter complete bodies are sent as they are: compression would barely shrink them."""

    ENCODINGS: Optional[tuple[str, ...]] = None
    """Codings allowed, best first; None: every installed one (br, zstd, gzip)."""

    def __init__(self, request: HTTPServerRequest) -> None:
        super().__init__(request)
        allowed = self.ENCODINGS
        offered = _INSTALLED if allowed is None else tuple(c for c in allowed if c in _INSTALLED)
        self._coding = _choose(request.headers.get("Accept-Encoding"), offered)
        self._compressor: Optional[Encoder] = None

    @property
    def _gzipping(self) -> bool:
        # Tornado's name for "this response is being compressed"; subclasses
        # written for Tornado may read or clear it.
        return self._coding is not None

    @_gzipping.setter
    def _gzipping(self, value: bool) -> None:
        if not value:
            self._coding = None

    @classmethod
    def with_encodings(cls, encodings: Sequence[str]) -> type[GZipContentEncoding]:
        """A subclass allowing only ``encodings`` (best first; unknown names are an error).

        Raises:
            ValueError: an encoding other than gzip, br or zstd.
        """
        names = tuple(e.strip().lower() for e in encodings)
        unknown = [n for n in names if n not in ("gzip", "br", "zstd")]
        if unknown:
            raise ValueError(
                f"compress_response_encodings: unknown content coding(s) {unknown}; "
                "choose among gzip, br, zstd"
            )
        return type(cls.__name__, (cls,), {"ENCODINGS": names, "__module__": cls.__module__})

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> type[GZipContentEncoding]:
        """This class, restricted by the ``compress_response_encodings`` setting if given."""
        encodings = settings.get("compress_response_encodings")
        if encodings is None:
            return cls
        if isinstance(encodings, str):
            encodings = encodings.split(",")
        return cls.with_encodings(encodings)

    def _compressible_type(self, ctype: str) -> bool:
        return ctype.startswith("text/") or ctype in self.CONTENT_TYPES

    def transform_first_chunk(
        self, status_code: int, headers: HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, HTTPHeaders, bytes]:
        """Decides whether to compress, adjusts the headers and compresses the chunk."""
        vary = headers.get("Vary")
        if vary is None:
            headers["Vary"] = "Accept-Encoding"
        elif "accept-encoding" not in vary.lower():
            headers["Vary"] = vary + ", Accept-Encoding"
        coding = self._coding
        if coding is not None:
            ctype = headers.get("Content-Type", "").split(";")[0].strip()
            if not (
                self._compressible_type(ctype)
                and (not finishing or len(chunk) >= self.MIN_LENGTH)
                and "Content-Encoding" not in headers
                # A part of the body (206) or a refused range (416): its
                # Content-Range counts the bytes of the uncoded body, and the
                # compressed part of a range could not be decoded alone.
                and "Content-Range" not in headers
            ):
                coding = self._coding = None
        if coding is not None:
            headers["Content-Encoding"] = coding
            level = self.GZIP_LEVEL if coding == "gzip" else None
            self._compressor = make_encoder(coding, level)
            chunk = self.transform_chunk(chunk, finishing)
            if "Content-Length" in headers:
                # The length changed; only a body sent in one piece knows the new one.
                if finishing:
                    headers["Content-Length"] = str(len(chunk))
                else:
                    del headers["Content-Length"]
        return status_code, headers, chunk

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        """Compresses a chunk; a flush makes it decodable before the next one arrives."""
        compressor = self._compressor
        if compressor is None:
            return chunk
        data = compressor.encode(chunk, finishing)
        if finishing:
            self._compressor = None
        return data
