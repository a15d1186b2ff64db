"""A concurrent web crawler: ``python demos/webspider/spider.py URL [--concurrency=10]``.

Workers take URLs from a `squall.queues.Queue`, fetch them with
`squall.httpclient.AsyncHTTPClient`, and queue the links they find, as
long as those links start with the first URL (the prefix): the crawl never
leaves the site section it was given.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.parse
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Optional

import squall.options
from squall.httpclient import AsyncHTTPClient, HTTPClientError
from squall.queues import Queue


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        if tag == "a":
            self.hrefs.extend(value for name, value in attrs if name == "href" and value)


def links(base: str, html: str) -> list[str]:
    """The absolute URLs of the ``<a href>`` links in ``html``, without fragments."""
    parser = _LinkParser()
    parser.feed(html)
    parser.close()
    found = []
    for href in parser.hrefs:
        url, _ = urllib.parse.urldefrag(urllib.parse.urljoin(base, href.strip()))
        if url.startswith(("http://", "https://")):
            found.append(url)
    return found


@dataclass
class CrawlResult:
    """What a crawl saw: fetched pages (URL -> status) and failures (URL -> error)."""

    fetched: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


async def crawl(
    root: str,
    concurrency: int = 10,
    max_pages: int = 1000,
    client: Optional[AsyncHTTPClient] = None,
    timeout: float = 10.0,
) -> CrawlResult:
    """Crawls from ``root``, following links under it, with ``concurrency`` workers.

    Args:
        root: the first URL, and the prefix every followed link must have.
        concurrency: how many fetches run at once.
        max_pages: stop queueing new URLs after this many.
        client: the HTTP client (a shared `AsyncHTTPClient` when None).
        timeout: per-request timeout in seconds.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    client = client or AsyncHTTPClient()
    result = CrawlResult()
    queue: Queue[str] = Queue()
    seen = {root}
    queue.put_nowait(root)

    async def fetch(url: str) -> None:
        try:
            response = await client.fetch(url, request_timeout=timeout)
        except HTTPClientError as exc:
            result.failed[url] = f"HTTP {exc.code}"
            return
        except Exception as exc:  # any network error: note it, keep crawling
            result.failed[url] = f"{type(exc).__name__}: {exc}"
            return
        result.fetched[url] = response.code
        if not response.headers.get("Content-Type", "").startswith("text/html"):
            return
        # The client follows redirects: resolve links against the final URL.
        for link in links(response.effective_url, response.body.decode("utf-8", "replace")):
            if link.startswith(root) and link not in seen and len(seen) < max_pages:
                seen.add(link)
                queue.put_nowait(link)

    async def worker() -> None:
        async for url in queue:
            try:
                await fetch(url)
            finally:
                queue.task_done()

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    try:
        await queue.join()
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return result


def main(argv: Optional[list[str]] = None) -> None:
    opts = squall.options.OptionParser()
    opts.define("concurrency", default=10, type=int, help="fetches at once")
    opts.define("max_pages", default=1000, type=int, help="stop after this many URLs")
    urls = opts.parse_command_line(sys.argv if argv is None else argv, final=False)
    if len(urls) != 1:
        sys.exit("usage: spider.py [--concurrency=N] [--max_pages=N] URL")

    result = asyncio.run(crawl(urls[0], opts.concurrency, opts.max_pages))
    for url, code in sorted(result.fetched.items()):
        print(f"{code} {url}")
    for url, error in sorted(result.failed.items()):
        print(f"ERR {url}: {error}")
    print(f"{len(result.fetched)} fetched, {len(result.failed)} failed")


if __name__ == "__main__":
    main()
