"""Makes Tornado's suite (../shared/tools/tornado-suite) run over HTTP/2.

Put this folder on PYTHONPATH with SQUALL_SUITE_HTTP2=1 (the ``python``
script beside it does both): every HTTPServer then has ``http2=True`` and
AsyncHTTPClient() is an H2AsyncHTTPClient speaking h2c by prior knowledge,
so the suite's ``self.fetch`` and ``self.http_client`` requests are HTTP/2
streams. Nothing in squall changes; tests that write raw HTTP/1.1 still get
it (the server tells the protocols apart by the first bytes).
"""

import os

if os.environ.get("SQUALL_SUITE_HTTP2"):
    from typing import Any

    from squall.httpclient import AsyncHTTPClient
    from squall.httpserver import HTTPServer

    _initialize = HTTPServer.initialize

    def _initialize_h2(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("http2", True)
        _initialize(self, *args, **kwargs)

    HTTPServer.initialize = _initialize_h2  # type: ignore[method-assign]
    AsyncHTTPClient.configure("squall.h2client.H2AsyncHTTPClient", http2_prior_knowledge=True)
