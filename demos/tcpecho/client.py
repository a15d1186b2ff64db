"""Sends lines to the echo server and prints what comes back.

``python demos/tcpecho/client.py --port=9888 hello world`` sends "hello" and
"world"; with no words it sends each line read from standard input.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Optional

import squall.options
from squall.tcpclient import TCPClient


async def echo(host: str, port: int, lines: Iterable[str], timeout: float = 10.0) -> list[str]:
    """Sends each line and returns the server's answers, in order."""
    stream = await TCPClient().connect(host, port, timeout=timeout)
    answers: list[str] = []
    try:
        for line in lines:
            await stream.write(line.encode("utf-8") + b"\n")
            reply = await asyncio.wait_for(stream.read_until(b"\n"), timeout)
            answers.append(reply[:-1].decode("utf-8"))
    finally:
        stream.close()
    return answers


def main(argv: Optional[list[str]] = None) -> None:
    opts = squall.options.OptionParser()
    opts.define("port", default=9888, type=int, help="the server's port")
    opts.define("host", default="127.0.0.1", help="the server's host")
    words = opts.parse_command_line(sys.argv if argv is None else argv, final=False)
    lines = words or (line.rstrip("\n") for line in sys.stdin)
    for answer in asyncio.run(echo(opts.host, opts.port, lines)):
        print(answer)


if __name__ == "__main__":
    main()
