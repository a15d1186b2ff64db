"""Hello world from a bare Tornado HTTPServer with a plain callback (no web layer)."""

import sys

from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPHeaders, HTTPServerRequest, ResponseStartLine
from tornado.ioloop import IOLoop

from _speedups import choose_loop

BODY = b"Hello, world"


def handle(request: HTTPServerRequest) -> None:
    conn = request.connection
    assert conn is not None
    headers = HTTPHeaders({"Content-Type": "text/plain", "Content-Length": str(len(BODY))})
    conn.write_headers(ResponseStartLine("HTTP/1.1", 200, "OK"), headers, BODY)
    conn.finish()


def main() -> None:
    choose_loop(False)
    server = HTTPServer(handle)
    server.listen(int(sys.argv[1]), "127.0.0.1")
    IOLoop.current().start()


if __name__ == "__main__":
    main()
