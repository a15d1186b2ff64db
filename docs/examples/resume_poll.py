"""Long polling whose cursor is the channel's position: any process can answer.

``python resume_poll.py`` listens on 127.0.0.1:8000 (this machine only):
``curl -d hello http://127.0.0.1:8000/publish/news`` publishes and
``curl 'http://127.0.0.1:8000/updates/news?cursor='`` polls. Any process
answers only on a shared broker: ``PUBSUB_URL=redis://127.0.0.1:6379/0``
(the default ``memory://`` keeps nothing across a restart).
"""

import asyncio
import os

import squall.pubsub
import squall.web
from squall.resume import ChannelPollHandler


class Updates(ChannelPollHandler):
    """``GET /updates/NAME?cursor=POSITION``: what came after the cursor, as JSON."""

    poll_timeout = 20.0

    def channel(self, name: str) -> str:
        return f"updates:{name}"


class Publish(squall.web.RequestHandler):
    async def post(self, name: str) -> None:
        pubsub: squall.pubsub.PubSub = self.settings["pubsub"]
        position = await pubsub.publish(f"updates:{name}", self.request.body.decode())
        self.write({"position": str(position)})


def make_app(pubsub_url: str = "") -> squall.web.Application:
    # The broker from PUBSUB_URL when none is given: `squall run
    # resume_poll:make_app --workers 2` shares channels over it too.
    pubsub_url = pubsub_url or os.environ.get("PUBSUB_URL", "memory://")
    pubsub = squall.pubsub.connect(pubsub_url, history_size=200, history_ttl=120)
    return squall.web.Application(
        [(r"/updates/(\w+)", Updates), (r"/publish/(\w+)", Publish)], pubsub=pubsub
    )


async def follow(base: str, name: str) -> None:
    """A client: prints each update once, in order, across reconnections."""
    import json

    from squall.httpclient import AsyncHTTPClient, HTTPClientError

    http = AsyncHTTPClient()
    cursor = ""
    while True:
        try:
            response = await http.fetch(
                f"{base}/updates/{name}?cursor={cursor}", request_timeout=30
            )
        except (HTTPClientError, OSError):
            await asyncio.sleep(1)  # the server is away: try again
            continue
        answer = json.loads(response.body)
        if not answer["recovered"]:
            print("-- missed some: reload the state here --")
        for publication in answer["publications"]:
            print(publication["position"], publication["data"])
        cursor = answer["position"] or ""


async def main() -> None:
    app = make_app()
    app.listen(8000, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
