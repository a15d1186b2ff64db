"""A WebTransport echo as a bare ASGI application (the ``webtransport`` scope).

Run it over HTTP/3 (WebTransport needs it; the certificate as for any
HTTP/3 server, or a short-lived one a page trusts by its hash, see
``page.py`` and ``screenshot.py``)::

    squall run --app-dir demos/webtransport app:app --http3 \\
        --certfile cert.pem --keyfile key.pem --port 4433

Datagrams come back prefixed with ``echo``; so does what the client writes
on a bidirectional stream, once it ends the stream; a unidirectional
stream is answered reversed on one the application opens.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a WebTransport echo lives here\n"})
        return
    if scope["type"] != "webtransport":
        return  # lifespan: nothing to set up
    assert (await receive())["type"] == "webtransport.connect"
    await send({"type": "webtransport.accept"})
    pending: dict[int, bytes] = {}  # stream ID -> what came so far
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "webtransport.datagram.receive":
            await send({"type": "webtransport.datagram.send", "data": b"echo " + message["data"]})
        elif kind == "webtransport.stream.receive":
            sid = message["stream"]
            pending[sid] = pending.get(sid, b"") + message["data"]
            if message["more_body"]:
                continue
            data = pending.pop(sid)
            if sid % 4 == 2:  # the client's unidirectional stream: answer on one of ours
                await send({"type": "webtransport.stream.open", "unidirectional": True})
                sid = (await receive())["stream"]  # webtransport.stream.opened
                data = data[::-1]
            else:
                data = b"echo " + data
            await send(
                {
                    "type": "webtransport.stream.send",
                    "stream": sid,
                    "data": data,
                    "end_stream": True,
                }
            )
        elif kind == "webtransport.stream.reset":
            pending.pop(message["stream"], None)
        elif kind == "webtransport.disconnect":
            print(f"session closed: {message['code']} {message['reason']!r}", flush=True)
            return
