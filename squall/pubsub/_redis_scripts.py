"""What the Redis engines share: the Lua scripts that keep positions and
history beside each publish, the wire format of a publication, the keys,
and the objects that run the history and presence scripts on an engine's
`RedisSite` (`RedisHistory`, `RedisPresence`; the publisher, which retries
through a failover, is ``_publisher``'s `RetriedPublisher`).

A channel's state is two keys that share a hash tag (so that one script
may touch both on a Redis Cluster, on the shard that also carries the
channel's broker channel):

* ``<tag>:m:<channel>``, a hash: ``o`` the last offset, ``e`` the epoch,
  ``b`` the offset the epoch began after when not 0 (it was begun after
  a failover: see the publish script and `RENEW_LUA`), ``r`` the
  replication ID (``master_replid``) of the primary that wrote it last;
* ``<tag>:h:<channel>``, a stream of ``o`` (offset), ``d`` (data) and
  ``i`` (origin: the publisher's token and the publish's count) entries, trimmed by count (``MAXLEN ~``: a whole node at a time, so up
  to 100 more than ``history_size`` may be held, never read) and by age
  (``MINID``, the entries' IDs being Redis' clock).

The hash also keeps, per publisher (``p:<token>``), its last applied
publish on the channel (``"<count> <offset> <unix second>"``), so that a publish
tried again after its shard did not answer (a failover) is applied once; a
publisher quiet on the channel for longer than its retry window
(``publish_timeout``) is forgotten at the next checkpoint (``ct``, once
per ``min(publish_timeout, history_ttl / 10)``), so the hash holds the
publishers of the last window, whatever the rate.

Both expire ``history_ttl`` (up to a tenth more) after the last publication. A missing hash means
the history is gone (expired, flushed, a failover that lost writes): the next
publish or read starts a new epoch at offset 0.

A channel's epoch lasts no longer than the replication history that wrote
it. Redis replicates asynchronously: a primary acknowledges a write, and
PUBLISHes it to live subscribers, before its replica has it, so a failover
may lose the last publications of a channel and leave its top below offsets
readers were given. Nothing on the promoted replica tells which, so every
script that gives or reads positions compares the server's ``master_replid``
(which a promotion, or a restart without the old data, changes) with the
``r`` the channel's state was written under, and on a difference begins a
new epoch after the top found: a reader coming back from the old epoch is
told it cannot be sure it has everything (``recovered`` False, a `Reset`),
never handed the reused offsets as if it had seen them. That costs one
``INFO replication`` per publish (see the pubsub guide's table).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Optional

from squall.pubsub._presence import Hold
from squall.pubsub._types import HistoryResult, Position, Publication, new_epoch


def cut_under(exc: BaseException) -> ConnectionError:
    """The ConnectionError for redis-py's connection closed under a command.

    redis-py says so with an AttributeError ('writelines' on None) or
    uvloop's RuntimeError ('handler is closed'). When the calling task is
    being cancelled (the loop shutting down closes the connections in the
    same turn), the cancellation is what is raised: it must stay one.

    Raises:
        asyncio.CancelledError: the current task is being cancelled.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc
    return ConnectionError(f"the connection to Redis was closed under a command: {exc!r}")


# The server's replication ID (``master_replid``: 40 characters, new at a
# promotion or a restart) read from ``INFO replication``, which is what a
# script can ask (ROLE, CONFIG and the like are refused in scripts): a plain
# search, a third cheaper than a Lua pattern (10,000 instructions a
# publish). A server whose INFO lacked it (Redis has had it since 4.0, and
# Valkey) would give '?' every time, and so never begin an epoch this way.
_REPLID_LUA = """local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
local rid = at and string.sub(info, at + 14, at + 53) or '?'
"""


# Publish: one atomic step on the channel's shard. KEYS: meta (and, with
# history, the stream). ARGV: 1 "<the channel's length in bytes> <channel>",
# 2 data, 3 a new epoch (8 characters), followed, when the publisher
# remembers its last applied publish on the channel, by that publish's
# epoch (8 characters) and offset; 4 the publisher's field ("p:<token>"), 5
# the publish's count (the publisher's, growing), 6 sent_ms (the attempt's
# time on Redis' clock as the client reckons it; 0: unknown), followed, on
# an attempt made again after one that may have been applied (it got no
# answer), by a space and the replication ID that attempt was sent under
# as the publisher knew it ('?': unknown), 7 the broker
# channel, 8 keep_ms. Eight, no more: Redis puts them in a Lua table, and
# a ninth grows it (5,000 instructions a publish, 6%, counted with two
# more). ARGV[1] carries the publication's origin too ("<token>.<count>
# <length> <channel>": `wire_head`), which the PUBLISH and the stream
# entry repeat. Every reply but the already-applied one ends with the
# server's replication ID (``rid``: the publisher keeps it, for the attempt
# made again). Returns {offset, epoch, 0, now_ms, rid}; {offset, epoch, 4,
# now_ms, rid} when it was applied in a new epoch because the channel's state
# was written under another replication history (``r``: a failover or a
# restart, see the module's docstring), begun after the top found with the
# history kept; {offset, epoch, 3, now_ms, rid}
# when it was applied in a new epoch because the channel's top was below
# the publisher's last offset in the same epoch (a failover to a replica
# that had not received the last writes: their offsets would be given
# again, and a reader past them would drop the new publications as seen;
# the offsets go on from the top and the history, all of the old epoch, is
# dropped, so that the new epoch's holds only its own publications; the
# offsets are compared as text, without a conversion); {offset, epoch, 1}
# when this count was applied already (nothing done again); {0, '', 2,
# now_ms, rid} when the attempt is older than the stale limit: its client gave
# it up and may have sent it again elsewhere (a primary stopped, resumed
# after its replica took over, reads what was waiting in its sockets), so
# it is not applied; {0, '', 5, now_ms, rid} when an attempt made again
# names a replication ID other than the server's and this count is not
# found applied: the attempt that got no answer may have been applied by a
# primary since lost with what it had not replicated (a lossy failover), and
# readers may have had it live; applied now it would reach them twice,
# under two positions, so it is not applied and the publisher is told.
#
# A publisher has at most one publish in flight per channel (see
# squall.pubsub._publisher), so its last applied count on the channel, kept in the
# meta hash beside the offset ("<count> <offset> <unix second>"), is all that is
# needed to apply each publish once: no set of ids. Each redis.call costs
# Redis 6,000 to 8,000 instructions (callgrind, Redis 7.0), about its whole
# work for a plain PUBLISH, so the steady path makes four (HMGET, TIME,
# HSET, PUBLISH), five with history (XADD, trimmed a node at a time), and
# converts a number to text at most once (glibc's strtod and printf cost
# as much as a call); expiry, age trimming and forgetting publishers quiet
# for longer than keep_ms are done at a checkpoint, once per
# min(keep_ms, ttl / 10) ms whatever the rate.
_PUBLISH_LUA = """
local m = redis.call('HMGET', KEYS[1], 'e', 'o', 'ct', ARGV[4], 'r')
local now = redis.call('TIME')
local epoch = m[1]
local mine = ARGV[5] .. ' '
if epoch and m[4] and string.sub(m[4], 1, #mine) == mine then
  return {tonumber(string.match(m[4], ' (%d+) ')), epoch, 1}
end
@REPLID@local second = tonumber(now[1])
local ms = second * 1000 + math.floor(now[2] / 1000)
local sent = ARGV[6]
local was = false
if #sent > 14 then
  was = string.match(sent, ' (.*)$')
  sent = string.match(sent, '^%d+')
end
sent = tonumber(sent)
if sent > 0 and ms - sent > @STALE@ then
  return {0, '', 2, ms, rid}
end
if was and was ~= rid then
  return {0, '', 5, ms, rid}
end
local offset = 1
local done = 0
local last = ARGV[3]
if epoch and m[5] and m[5] ~= rid then
  local top = m[2]
  offset = top + 1
  epoch = string.sub(last, 1, 8)
  done = 4
  redis.call('HSET', KEYS[1], 'e', epoch, 'b', top, 'r', rid)
elseif epoch then
  local top = m[2]
  offset = top + 1
  if m[5] ~= rid then
    redis.call('HSET', KEYS[1], 'r', rid)
  end
  if #last > 8 and string.sub(last, 9, 16) == epoch then
    last = string.sub(last, 17)
    if #top < #last or #top == #last and top < last then
      epoch = string.sub(ARGV[3], 1, 8)
      done = 3
      redis.call('HSET', KEYS[1], 'e', epoch, 'b', top)
@NEW_EPOCH@
    end
  end
else
  epoch = string.sub(last, 1, 8)
  redis.call('HSET', KEYS[1], 'r', rid)
@NEW_EPOCH@
end
local o = offset .. ''
@APPEND@
mine = mine .. o .. ' ' .. now[1]
local keep = tonumber(ARGV[8])
local every = math.min(keep, @EVERY@)
if ms - (tonumber(m[3]) or 0) >= every then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local name = all[i]
    if string.sub(name, 1, 2) == 'p:' and name ~= ARGV[4] then
      if second - tonumber(string.match(all[i + 1], ' (%d+)$')) > keep / 1000 then
        redis.call('HDEL', KEYS[1], name)
      end
    end
  end
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', o, 'ct', ms, ARGV[4], mine)
  redis.call('PEXPIRE', KEYS[1], @TTL@ + every)
@CHECKPOINT@
else
  redis.call('HSET', KEYS[1], 'o', o, ARGV[4], mine)
end
redis.call('@COMMAND@', ARGV[7], '\\29' .. o .. ' ' .. epoch .. ' ' .. ARGV[1] .. ARGV[2])
return {offset, epoch, done, ms, rid}
"""

_HISTORY_PARTS = {
    # A new epoch: what the stream held belongs to the old one.
    "@NEW_EPOCH@": "  redis.call('DEL', KEYS[2])",
    # Trimmed a whole node at a time: readers see history_size (read_args).
    "@APPEND@": (
        "redis.call('XADD', KEYS[2], 'MAXLEN', '~', @SIZE@, '*', 'o', o, 'd', ARGV[2], "
        "'i', string.match(ARGV[1], '^%S+'))"
    ),
    "@CHECKPOINT@": (
        "  if ms > @TTL@ then\n"
        "    redis.call('XTRIM', KEYS[2], 'MINID', ms - @TTL@)\n"
        "  end\n"
        "  redis.call('PEXPIRE', KEYS[2], @TTL@ + every)"
    ),
}


def publish_lua(history_size: int, ttl_ms: int, stale_ms: int, command: str) -> str:
    """The publish script for one engine's settings (they are part of its text).

    ``command``: ``PUBLISH`` or ``SPUBLISH``. Without history the script
    touches the meta hash only (one key).
    """
    if command not in ("PUBLISH", "SPUBLISH"):
        raise ValueError(f"command must be PUBLISH or SPUBLISH, not {command!r}")
    text = _PUBLISH_LUA
    for mark, part in _HISTORY_PARTS.items():
        text = text.replace(mark, part if history_size > 0 else "")
    for mark, value in (
        ("@SIZE@", history_size),
        ("@TTL@", ttl_ms),
        ("@EVERY@", max(1, ttl_ms // 10)),
        ("@STALE@", stale_ms),
        ("@COMMAND@", command),
        ("@REPLID@", _REPLID_LUA),
    ):
        text = text.replace(mark, str(value))
    return text


# Read the top and, when asked, the newest entries. KEYS: meta, stream.
# ARGV: since offset (-1: none), how many at most, new epoch, ttl_ms.
# Returns {top, epoch}, or {top, epoch, entries, start, began}: ``start`` is
# the offset the epoch began after ('b', 0 unless it was begun after a
# failover, at the top found), and a since below it reads from it, so that
# a reader moving into that epoch gets all of it; ``began`` is 1 when this
# read began the epoch, having found the channel's state written under
# another replication history (see the publish script's ``r``).
READ_LUA = """
local meta = redis.call('HMGET', KEYS[1], 'o', 'e', 'b', 'r')
@REPLID@local epoch = meta[2]
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0, 'r', rid)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('DEL', KEYS[2])
  return {0, epoch}
end
local top = tonumber(meta[1])
local start = tonumber(meta[3]) or 0
local began = 0
if meta[4] ~= rid then
  if meta[4] then
    epoch = ARGV[3]
    start = top
    began = 1
    redis.call('HSET', KEYS[1], 'e', epoch, 'b', top, 'r', rid)
  else
    redis.call('HSET', KEYS[1], 'r', rid)
  end
end
local since = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local n = cap
if since >= 0 then
  if since < start then
    since = start
  end
  n = top - since
  if n > cap then
    n = 0
  end
end
if n <= 0 then
  return {top, epoch, {}, start, began}
end
local now = redis.call('TIME')
local minid = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[4])
if minid > 0 then
  redis.call('XTRIM', KEYS[2], 'MINID', minid)
end
return {top, epoch, redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n), start, began}
""".replace("@REPLID@", _REPLID_LUA)

# Begin a new epoch after a failover that lost writes. KEYS: meta, stream.
# ARGV: the epoch whose offsets were given again, a new epoch, ttl_ms, the
# offset the new epoch begins after (``b``: the last before the first given
# again, when known, else the top found). Returns the channel's epoch
# after: the new one, or the one another node began first (the first to
# ask wins; the rest follow it). The offsets go on from where they are and
# the stream is kept: its entries carry no epoch, so what a read returns
# is in the new epoch from now on, from ``b`` (those up to it were handed
# out in the old one).
RENEW_LUA = """
local epoch = redis.call('HGET', KEYS[1], 'e')
if epoch and epoch ~= ARGV[1] then
  return epoch
end
@REPLID@if epoch then
  redis.call('HSET', KEYS[1], 'e', ARGV[2], 'b', ARGV[4], 'r', rid)
else
  redis.call('HSET', KEYS[1], 'e', ARGV[2], 'o', 0, 'r', rid)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('DEL', KEYS[2])
end
return ARGV[2]
""".replace("@REPLID@", _REPLID_LUA)

# Presence: a sorted set (client -> expiry ms), a hash (client -> info) and
# a hash of the holds on each entry (client -> "owner expiry owner expiry
# ..."): an entry lives while one of its holds does (each `Presence` handle
# holds its own), and its score is the latest expiry of its live holds.
# `live_holds` is the holds in ``held`` not expired by ``now``, without
# ``skip``'s, and their latest expiry.
_HOLDS_LUA = """
local function live_holds(held, now, skip)
  local kept, top = {}, 0
  if not held then
    return kept, top
  end
  local words = {}
  for word in string.gmatch(held, '%S+') do
    words[#words + 1] = word
  end
  for j = 1, #words - 1, 2 do
    local expires = tonumber(words[j + 1])
    if words[j] ~= skip and expires and expires > now then
      kept[#kept + 1] = words[j]
      kept[#kept + 1] = words[j + 1]
      if expires > top then
        top = expires
      end
    end
  end
  return kept, top
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: zset, info hash, holds hash. ARGV: ttl_ms, join (1: a join's holds,
# which set their entries' info; 0: a refresh's, which set it only where they
# put an entry back), then (client, owner, info) triples. Returns the
# clients that had no live entry before.
PRESENCE_SET_LUA = (
    _HOLDS_LUA
    + """
local ttl = tonumber(ARGV[1])
local join = ARGV[2] == '1'
local back = {}
for i = 3, #ARGV, 3 do
  local client = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], client)
  local gone = not score or tonumber(score) <= now
  if gone then
    back[#back + 1] = client
  end
  local kept, top = live_holds(redis.call('HGET', KEYS[3], client), now, ARGV[i + 1])
  kept[#kept + 1] = ARGV[i + 1]
  kept[#kept + 1] = now + ttl
  redis.call('ZADD', KEYS[1], math.max(top, now + ttl), client)
  if join or gone then
    -- a refresh keeps the info of the entry's last join
    redis.call('HSET', KEYS[2], client, ARGV[i + 2])
  end
  redis.call('HSET', KEYS[3], client, table.concat(kept, ' '))
end
for k = 1, 3 do
  if redis.call('PTTL', KEYS[k]) < ttl then
    redis.call('PEXPIRE', KEYS[k], ttl)
  end
end
return back
"""
)

# KEYS: zset, info hash, holds hash. ARGV: client, owner. Returns 1 when no
# live hold is left and the entry was removed, else 0.
PRESENCE_REMOVE_LUA = (
    _HOLDS_LUA
    + """
local kept, top = live_holds(redis.call('HGET', KEYS[3], ARGV[1]), now, ARGV[2])
if #kept == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  return 1
end
redis.call('ZADD', KEYS[1], top, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], table.concat(kept, ' '))
return 0
"""
)

# KEYS: zset, info hash, holds hash. ARGV: limit (0: count only). Drops up
# to 1000 expired entries on the way, so that a channel whose process died
# shrinks.
PRESENCE_GET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1000)
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('HDEL', KEYS[2], unpack(gone))
  redis.call('HDEL', KEYS[3], unpack(gone))
end
local limit = tonumber(ARGV[1])
if limit == 0 then
  return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
end
local here = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'LIMIT', 0, limit)
if #here == 0 then
  return {{}, {}}
end
return {here, redis.call('HMGET', KEYS[2], unpack(here))}
"""

# A publication on the wire starts with this byte, so that a message
# PUBLISHed by something else (redis-cli) is told apart:
# "\x1d<offset> <epoch> <origin> <length of channel in bytes> <channel><data>",
# the origin being the publisher's token and the publish's count
# ("<token>.<count>"), which lets each subscribing process drop a copy
# (see `PubSub`'s origins). Squall before origins wrote `OLD_MARKER` and
# no origin; such publications are still read.
MARKER = b"\x1d"
OLD_MARKER = b"\x1e"

# A publication sent with a plain PUBLISH/SPUBLISH (an engine made with
# ``positions=False``: no script, no offset) starts with this one instead:
# "\x1f<token> <count> <length of channel in bytes> <channel><data>", the
# publisher's token and count in place of the offset and epoch, so that
# each subscribing process applies it once (`Once`).
PLAIN_MARKER = b"\x1f"

#: The position of every publication sent without a script.
PLAIN_POSITION = Position(0, "redis")


def plain_payload(token: str, count: int, channel: str, message: str) -> str:
    """The wire form of a publication sent without a script (`PLAIN_MARKER`)."""
    return f"\x1f{token} {count} {len(channel.encode('utf-8'))} {channel}{message}"


class Once:
    """The subscribing side of a publish sent without a script: each
    publisher's last count per channel, so that a copy of a publication
    (a publish tried again after its reply was lost, or one a stopped
    primary runs late) is dropped, and so is one older than what the
    publisher already got through (it gave that one up and raised).

    A publisher sends one publish at a time per channel (`RetriedPublisher`'s
    lanes), so on a channel its counts arrive growing. At most ``limit``
    (channel, publisher) pairs are remembered, the least recently heard from
    forgotten first; a copy that arrives after its pair was forgotten is
    delivered again.
    """

    __slots__ = ("_last", "limit")

    def __init__(self, limit: int = 10_000) -> None:
        self._last: dict[tuple[str, bytes], int] = {}
        self.limit = limit

    def decode(self, raw: bytes) -> Optional[Publication]:
        """The publication in ``raw`` (it starts with `PLAIN_MARKER`), or None
        for a copy or an older one from the same publisher.

        Raises:
            ValueError: ``raw`` is not such a publication.
        """
        try:
            token, count, size, rest = raw[1:].split(b" ", 3)
            n = int(size)
            number = int(count)
            channel = rest[:n].decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not a publication sent without a script: {raw[:60]!r}") from exc
        key = (channel, token)
        last = self._last.pop(key, None)
        if last is not None and number <= last:
            self._last[key] = last
            return None
        self._last[key] = number
        if len(self._last) > self.limit:
            del self._last[next(iter(self._last))]
        return Publication(channel, rest[n:].decode("utf-8", "replace"), PLAIN_POSITION)


def _idle_connections(client: Any) -> list[Any]:
    """The connections waiting in a redis-py client's pools (a ``Redis``'s
    pool, or each node's of a ``RedisCluster``); none when the client keeps
    them otherwise (the names are redis-py's own, read where they are)."""
    idle = list(getattr(getattr(client, "connection_pool", None), "_available_connections", ()))
    nodes = getattr(getattr(client, "nodes_manager", None), "nodes_cache", None) or {}
    for node in nodes.values():
        idle.extend(getattr(node, "_free", ()))
    return idle


async def drop_closed(client: Any) -> None:
    """Disconnects the idle pooled connections of ``client`` that the server
    closed (their end read: a restart, a killed primary), so that the next
    command opens a new one instead of being written to a socket no server
    reads. A command sent on such a connection is received by no one, but
    fails as one the server took and died under would ("Connection closed
    by server"); the publisher needs to tell the two apart (see
    `squall.pubsub._publisher.RetriedPublisher`). Two turns of the loop
    first, so that a close already received is read (a task woken in a
    turn runs before that turn's I/O callbacks)."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    for connection in _idle_connections(client):
        reader = getattr(connection, "_reader", None)
        if reader is not None and reader.at_eof():
            await connection.disconnect(nowait=True)


async def no_preparation() -> None:
    """What the Redis engine's client needs before a command: nothing (the
    cluster engine initialises its client instead)."""


def keys(tag: str, channel: str) -> list[str]:
    """The meta and stream keys of ``channel`` under hash tag ``tag``."""
    return [f"{tag}:m:{channel}", f"{tag}:h:{channel}"]


def presence_keys(tag: str, channel: str) -> list[str]:
    """The presence sorted set, info hash and holds hash of ``channel`` under
    hash tag ``tag``."""
    return [f"{tag}:p:{channel}", f"{tag}:i:{channel}", f"{tag}:o:{channel}"]


@dataclasses.dataclass(frozen=True)
class RedisSite:
    """What a Redis engine's publisher, history and presence run their
    scripts on, given by the engine."""

    #: The engine's redis-py client (``Redis`` or ``RedisCluster``).
    client: Any
    #: The broker, for error messages ("Redis at ...").
    where: str
    #: The exceptions that mean the broker is out of reach (raised as
    #: ConnectionError).
    lost: tuple[type[BaseException], ...]
    #: The hash tag of a channel's keys.
    tag: Callable[[str], str]
    #: Awaited before each command (the cluster engine initialises its
    #: client there).
    before: Callable[[], Awaitable[None]] = no_preparation


class RedisPresence:
    """The presence entries of the Redis engines, a `PresenceStore`: per channel
    a sorted set (client id by expiry), a hash (client id -> info) and a hash
    of each entry's holds under the channel's hash tag, each call one script
    on ``site``.
    """

    __slots__ = ("_scripts", "_site")

    def __init__(self, site: RedisSite) -> None:
        client = site.client
        self._scripts = (
            client.register_script(PRESENCE_SET_LUA),
            client.register_script(PRESENCE_REMOVE_LUA),
            client.register_script(PRESENCE_GET_LUA),
        )
        self._site = site

    async def _run(self, which: int, channel: str, args: list[Any]) -> Any:
        site = self._site
        await site.before()
        script = self._scripts[which]
        try:
            return await script(keys=presence_keys(site.tag(channel), channel), args=args)
        except site.lost as exc:
            raise ConnectionError(f"presence on Redis failed: {exc}") from exc

    async def put(
        self, channel: str, holds: Sequence[Hold], ttl: float, join: bool = False
    ) -> list[str]:
        ttl_ms = max(1, int(ttl * 1000))
        back: list[str] = []
        for start in range(0, len(holds), 500):  # bounded script arguments
            args: list[Any] = [ttl_ms, 1 if join else 0]
            for hold in holds[start : start + 500]:
                args += hold
            back += (c.decode("utf-8", "replace") for c in await self._run(0, channel, args))
        return back

    async def remove(self, channel: str, client: str, owner: str) -> bool:
        return bool(await self._run(1, channel, [client, owner]))

    async def get(self, channel: str, limit: int) -> dict[str, str]:
        here, infos = await self._run(2, channel, [limit])
        return {
            c.decode("utf-8", "replace"): (i or b"").decode("utf-8", "replace")
            for c, i in zip(here, infos, strict=True)
        }

    async def count(self, channel: str) -> int:
        return int(await self._run(2, channel, [0]))


def decode(raw: bytes) -> Optional[Publication]:
    """A publication from its wire form; None for a message not ours."""
    first = raw[:1]
    try:
        if first == MARKER:
            offset, epoch, origin, size, rest = raw[1:].split(b" ", 4)
            n = int(size)
            return Publication(
                rest[:n].decode("utf-8"),
                rest[n:].decode("utf-8", "replace"),
                Position(int(offset), epoch.decode("ascii")),
                origin.decode("ascii"),
            )
        if first == OLD_MARKER:
            offset, epoch, size, rest = raw[1:].split(b" ", 3)
            n = int(size)
            return Publication(
                rest[:n].decode("utf-8"),
                rest[n:].decode("utf-8", "replace"),
                Position(int(offset), epoch.decode("ascii")),
            )
    except (ValueError, UnicodeDecodeError):
        pass
    return None


def wire_head(token: str, count: int, channel: str) -> str:
    """What the publish script puts between a publication's epoch and its
    data: its origin, then the channel with its length in bytes."""
    return f"{token}.{count} {len(channel.encode('utf-8'))} {channel}"


def top_of(reply: Any) -> Position:
    """The position from a script's ``{offset, epoch, ...}`` reply."""
    epoch = reply[1]
    return Position(int(reply[0]), epoch.decode("ascii") if isinstance(epoch, bytes) else epoch)


def entries_of(channel: str, reply: Any) -> list[Publication]:
    """The publications in a read script's reply, oldest first."""
    if len(reply) < 3:
        return []
    epoch = top_of(reply).epoch
    pubs = []
    for _id, fields in reversed(reply[2]):
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        pubs.append(
            Publication(
                channel,
                values[b"d"].decode("utf-8", "replace"),
                Position(int(values[b"o"]), epoch),
                values.get(b"i", b"").decode("ascii", "replace"),
            )
        )
    return pubs


def read_args(since: Optional[Position], limit: int, strict: bool, history_size: int) -> int:
    """The script's "how many at most": all or nothing for a recovery, else
    the whole window, so that the oldest ``limit`` after ``since`` are in it.

    Never more than ``history_size``: the stream is trimmed approximately
    (a whole node of it at a time, ``MAXLEN ~``, a quarter of the cost of
    trimming each publish) and may hold up to 100 more, which no reader
    sees, so that what is recovered does not depend on where a node ends.
    """
    if strict or since is None:
        return min(limit, history_size) if history_size else limit
    return history_size or limit


def window(
    channel: str,
    reply: Any,
    since: Optional[Position],
    limit: int,
) -> HistoryResult:
    """A `HistoryResult` from a read script's reply."""
    from squall.pubsub._local import _window

    start = int(reply[3]) if len(reply) > 3 else 0
    return _window(entries_of(channel, reply), top_of(reply), since, limit, start)


class RedisHistory:
    """The kept publications and the positions of the Redis engines'
    channels: each read one script (`READ_LUA`) on ``site``.

    Args:
        site: the engine's client and what goes with it.
        history_size: publications kept per channel.
        ttl_ms: how long a channel's keys outlive its last publication (a
            read that starts a new epoch writes it).
        began: called with a channel and its new epoch when a read began
            it (the channel's state was written under another replication
            history).
    """

    __slots__ = ("_site", "_script", "_renew", "_history_size", "_ttl_ms", "_began")

    def __init__(
        self,
        site: RedisSite,
        history_size: int,
        ttl_ms: int,
        began: Callable[[str, str], None] = lambda channel, epoch: None,
    ) -> None:
        self._began = began
        self._site = site
        self._script = site.client.register_script(READ_LUA)
        self._renew = site.client.register_script(RENEW_LUA)
        self._history_size = history_size
        self._ttl_ms = ttl_ms

    async def read(
        self, channel: str, since: Optional[Position], limit: int, strict: bool
    ) -> HistoryResult:
        """What `PubSub`'s ``_read`` returns (see there).

        Raises:
            ConnectionError: the broker could not be reached.
        """
        site = self._site
        count = read_args(since, limit, strict, self._history_size)
        await site.before()
        try:
            reply = await self._script(
                keys=keys(site.tag(channel), channel),
                args=[-1 if since is None else since.offset, count, new_epoch(), self._ttl_ms],
            )
        except site.lost as exc:
            raise ConnectionError(f"cannot read history from {site.where}: {exc}") from exc
        if len(reply) > 4 and int(reply[4]):
            self._began(channel, top_of(reply).epoch)
        return window(channel, reply, since, limit)

    async def top(self, channel: str) -> Position:
        """``channel``'s top: its last offset and its epoch (a new epoch, at
        offset 0, when its state is gone)."""
        return (await self.read(channel, None, 0, True)).position

    async def renew(self, channel: str, epoch: str, after: int, new: str) -> str:
        """Begins epoch ``new`` on ``channel`` if it is still in ``epoch``,
        beginning after offset ``after`` (`RENEW_LUA`); the channel's epoch
        after (``new``, or the one another process began first).

        Raises:
            ConnectionError: the broker could not be reached.
        """
        site = self._site
        await site.before()
        try:
            reply = await self._renew(
                keys=keys(site.tag(channel), channel),
                args=[epoch, new, self._ttl_ms, after],
            )
        except site.lost as exc:
            raise ConnectionError(f"cannot begin a new epoch on {site.where}: {exc}") from exc
        return reply.decode("ascii") if isinstance(reply, bytes) else str(reply)
