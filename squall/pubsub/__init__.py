"""Broadcast messages to live subscribers, in one process or across many.

A `PubSub` carries text messages on named channels: `PubSub.publish` sends one
to every current subscriber of the channel, and `PubSub.subscribe` returns a
`Subscription` to iterate over.

Every publication has a `Position`: an offset that grows by one per
publication on its channel, and the channel's epoch, which changes when the
history behind the offsets was lost. With ``history_size`` set, the engine
keeps each channel's last publications (bounded by count and by age,
``history_ttl``) beside the offsets, appended in the same atomic step as the
publish, and a reader that comes back with its last position resumes
without a gap: ``subscribe(channel, since=position)`` yields what it missed,
then the live publications, in order and once each, and says in
``Subscription.recovered`` whether it could (``False``: too old, another
epoch, or more than ``max_recovery`` missed; reload the state and carry on
from ``Subscription.position``). `PubSub.history` reads the kept window.
By default nothing is kept (``history_size=0``): offsets are still given.

The engines share the API:

* `LocalPubSub` (the default, ``memory://``): subscribers in this process.
* `RedisPubSub` (``redis://host:port/db``, needs ``pip install squall[redis]``):
  every process connected to the same Redis sees every message. One Redis
  subscription per channel per process fans out to local subscribers;
  history lives in a Redis stream per channel. With
  ``redis+sentinel://host:port[,host:port]/name[/db]`` it uses the primary
  that Redis Sentinel names, and follows it through a failover.
* `RedisClusterPubSub` (``redis+cluster://host:port[,host:port]``): a Redis
  Cluster with sharded pub/sub. Channels map to a fixed number of
  hash-tagged partitions, a process holds one subscription connection per
  shard it needs, and a failover or slot move is followed by itself.
* `NatsPubSub` (``nats://host:port``, ``pip install squall[nats]``): NATS
  core subjects; at most once, no history.

When the connection to the broker is lost, it is retried with backoff,
channels are subscribed again, and both the loss and the recovery are logged
on ``squall.general`` and counted in ``PubSub.status``; local subscribers stay
subscribed throughout, and a reader resubscribing with its position gets
what was published meanwhile (within the history kept).

`PubSub.relay` forwards a channel straight to a collection of WebSockets with
`squall.websocket.broadcast`: no queue and no task per connection, one frame
per message for all of them, slow readers skipped and counted (and closed
past the limits given).

Channel names are bounded the same on every engine: a non-empty str of at
most ``MAX_CHANNEL_BYTES`` (1,024) bytes in UTF-8, with no lone surrogate;
`check_channel` says why a name is refused, and every method that takes a
channel raises that ValueError. Messages must be encodable in UTF-8 too
(`check_message`).

Slow subscribers are bounded: each `Subscription` holds at most
``max_pending`` undelivered messages (plus, right after a recovery, the
publications it recovered). Past that the *oldest* pending message is
dropped and ``Subscription.dropped`` counts it, so a stalled reader costs a
fixed amount of memory and, when it catches up, sees the newest messages;
the offsets it was given jump over those it lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from squall.pubsub._base import (
    CATCH_UP_READS,
    DEFAULT_HISTORY_TTL,
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_RECOVERY,
    PubSub,
    instances,
)
from squall.pubsub._cluster import RedisClusterPubSub
from squall.pubsub._local import LocalPubSub
from squall.pubsub._nats import NatsPubSub
from squall.pubsub._presence import DEFAULT_PRESENCE_TTL, Presence, presence_channel
from squall.pubsub._redis import RedisPubSub
from squall.pubsub._subscription import Relay, Subscription
from squall.pubsub._types import (
    MAX_CHANNEL_BYTES,
    HistoryResult,
    Position,
    Publication,
    PublishUncertainError,
    PubSubClosedError,
    Status,
    check_channel,
    check_message,
)

__all__ = [
    "PubSub",
    "LocalPubSub",
    "RedisPubSub",
    "RedisClusterPubSub",
    "NatsPubSub",
    "Subscription",
    "Relay",
    "Position",
    "Publication",
    "HistoryResult",
    "Status",
    "Presence",
    "presence_channel",
    "PubSubClosedError",
    "PublishUncertainError",
    "connect",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_RECOVERY",
    "DEFAULT_HISTORY_TTL",
    "DEFAULT_PRESENCE_TTL",
    "MAX_CHANNEL_BYTES",
    "CATCH_UP_READS",
    "check_channel",
    "check_message",
    "instances",
]


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(text)
    return text == "1"


_OPTIONS: dict[str, Callable[[str], Any]] = {
    "history_size": int,
    "history_ttl": float,
    "max_recovery": int,
    "presence_ttl": float,
    "positions": _flag,
}


def connect(
    url: Optional[str] = None, max_pending: int = DEFAULT_MAX_PENDING, **options: Any
) -> PubSub:
    """A `PubSub` for ``url``.

    ``memory://`` (the default), ``redis://host:port/db`` (also ``rediss://``,
    ``unix://``), ``redis+sentinel://host:port[,host:port...]/name[/db]``
    (the primary the Sentinels name ``name``; see `RedisPubSub`),
    ``redis+cluster://host:port[,host:port...]`` (query:
    ``partitions=128``, ``sharded=1``; ``sharded=0`` uses classic
    ``PUBLISH``) or ``nats://host:port``. ``history_size``, ``history_ttl``,
    ``max_recovery``, ``presence_ttl`` and ``positions`` (``0`` or ``1``:
    the Redis engines' plain publishes) may be given in the query or as
    keyword arguments (these win); other keyword arguments go to the
    engine's class.

    Raises:
        ValueError: the URL's scheme is not one of those, or an option is malformed.
    """
    parts = urlsplit(url or "memory://")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, kind in _OPTIONS.items():
        if name in query and name not in options:
            try:
                options[name] = kind(query.pop(name))
            except ValueError:
                what = "0 or 1" if kind is _flag else "a number"
                raise ValueError(f"pub/sub URL {url!r}: {name} must be {what}") from None
        query.pop(name, None)
    if url and len(query) < len(parse_qsl(parts.query, keep_blank_values=True)):
        # The engine's client gets the URL without ours (redis-py would
        # take history_size for an argument of its connections).
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
    scheme = parts.scheme
    if scheme == "memory":
        return LocalPubSub(max_pending, **options)
    if scheme in ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel"):
        return RedisPubSub(url or "", max_pending=max_pending, **options)
    if scheme in ("redis+cluster", "rediss+cluster"):
        return RedisClusterPubSub(url or "", max_pending=max_pending, **options)
    if scheme in ("nats", "tls"):
        return NatsPubSub(url or "", max_pending=max_pending, **options)
    raise ValueError(
        f"pub/sub URL {url!r}: scheme must be memory, redis, rediss, unix, redis+sentinel, "
        "redis+cluster or nats"
    )


for _cls in (
    PubSub,
    LocalPubSub,
    Subscription,
    Relay,
    PubSubClosedError,
    PublishUncertainError,
    RedisPubSub,
    Position,
    Publication,
    HistoryResult,
    Status,
    Presence,
    RedisClusterPubSub,
    NatsPubSub,
    check_channel,
    check_message,
):
    _cls.__module__ = __name__
del _cls
