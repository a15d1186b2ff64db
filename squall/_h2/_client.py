"""The client side of one HTTP/2 connection (over ``h2``), for the HTTP client.

The same flood limits and outbound flow-control queues as the server side
(`H2Connection`), with requests out and responses in.
"""

from __future__ import annotations

from typing import Optional, Union

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from squall._h2._errors import LocalProtocolError
from squall._h2._events import Data, EndOfStream, Event, GoAway, StreamReset
from squall._h2._hpack import StatelessEncoder
from squall._h2._limits import H2Limits
from squall._h2._over_h2 import H2PackageConnection, _SettingCodes

__all__ = ["H2ClientConnection", "Response"]


class Response:
    """A final response head arrived on ``stream_id``.

    Attributes:
        stream_id: The stream.
        status: The status code.
        headers: The fields in arrival order, names lowercase.
    """

    __slots__ = ("stream_id", "status", "headers")

    def __init__(self, stream_id: int, status: int, headers: list[tuple[str, str]]) -> None:
        self.stream_id = stream_id
        self.status = status
        self.headers = headers

    def __repr__(self) -> str:
        return f"Response({self.stream_id}, {self.status})"


class H2ClientConnection(H2PackageConnection):
    """The client side of an HTTP/2 connection: requests out, responses in.

    Args:
        limits: Limits on what the server may send (`H2Limits`); its
            ``max_concurrent_streams`` is not used (the server's is).
    """

    def __init__(self, limits: Optional[H2Limits] = None) -> None:
        limits = limits or H2Limits()
        config = h2.config.H2Configuration(client_side=True, header_encoding="latin-1")
        conn = h2.connection.H2Connection(config=config)
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                _SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
                _SettingCodes.INITIAL_WINDOW_SIZE: limits.initial_window_size,
                _SettingCodes.MAX_FRAME_SIZE: limits.max_frame_size,
                _SettingCodes.ENABLE_PUSH: 0,
            },
        )
        conn.encoder = StatelessEncoder()  # type: ignore[assignment]
        super().__init__(conn, limits)

    def initiate(self, upgrade_settings: Optional[str] = None) -> None:
        """Queue the client preface and SETTINGS, and open the receive window."""
        self._conn.initiate_connection()
        extra = self.limits.connection_window_size - 65535
        if extra > 0:
            self._conn.increment_flow_control_window(extra)

    @property
    def max_streams(self) -> int:
        """Streams the server lets us have open at once."""
        return int(self._conn.remote_settings.max_concurrent_streams)

    def send_request(
        self,
        method: str,
        scheme: str,
        authority: str,
        path: str,
        headers: list[tuple[str, str]],
        end_stream: bool,
    ) -> int:
        """Open a stream with a request head; return its id.

        Raises:
            LocalProtocolError: the connection cannot take a new stream.
        """
        conn = self._conn
        try:
            stream_id = conn.get_next_available_stream_id()
            fields: list[tuple[Union[str, bytes], Union[str, bytes]]] = [
                (":method", method),
                (":scheme", scheme),
                (":authority", authority),
                (":path", path),
            ]
            for name, value in headers:
                # As HTTP/1.1 sends them: one byte per character.
                if isinstance(value, bytes):
                    raw = value
                else:
                    try:
                        raw = value.encode("latin-1")
                    except UnicodeEncodeError:
                        raw = value.encode("utf-8")
                fields.append((name.encode("ascii"), raw))
            conn.send_headers(stream_id, fields, end_stream=end_stream)
        except (h2.exceptions.ProtocolError, ValueError) as exc:
            raise LocalProtocolError(f"cannot send the request: {exc}") from None
        return stream_id

    def _translate(self, events: list[h2.events.Event]) -> list[Event]:
        out: list[Event] = []
        pump = False
        for ev in events:
            kind = type(ev)
            if kind is h2.events.DataReceived:
                assert isinstance(ev, h2.events.DataReceived)
                assert ev.stream_id is not None and ev.data is not None
                out.append(Data(ev.stream_id, ev.data, ev.flow_controlled_length or 0))
            elif kind is h2.events.ResponseReceived:
                assert isinstance(ev, h2.events.ResponseReceived)
                assert ev.stream_id is not None and ev.headers is not None
                status = 0
                fields: list[tuple[str, str]] = []
                for name, value in ev.headers:
                    assert isinstance(name, str) and isinstance(value, str)
                    if name == ":status":
                        status = int(value)
                    else:
                        fields.append((name, value))
                out.append(Response(ev.stream_id, status, fields))  # type: ignore[arg-type]
            elif kind is h2.events.StreamEnded:
                assert isinstance(ev, h2.events.StreamEnded)
                assert ev.stream_id is not None
                out.append(EndOfStream(ev.stream_id))
            elif kind is h2.events.WindowUpdated:
                pump = True
            elif kind is h2.events.StreamReset:
                assert isinstance(ev, h2.events.StreamReset)
                assert ev.stream_id is not None
                self._pending.pop(ev.stream_id, None)
                out.append(StreamReset(ev.stream_id, int(ev.error_code or 0), ev.remote_reset))
            elif kind is h2.events.RemoteSettingsChanged:
                assert isinstance(ev, h2.events.RemoteSettingsChanged)
                if _SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:
                    pump = True
            elif kind is h2.events.ConnectionTerminated:
                assert isinstance(ev, h2.events.ConnectionTerminated)
                out.append(GoAway(int(ev.error_code or 0), ev.last_stream_id or 0))
            # 1xx heads, trailers, pings: nothing for the fetch to do.
        if pump and self._pending:
            out.extend(self._pump())
        return out
