"""What the Redis engines share: the Lua scripts that keep positions and
history beside each publish, the wire format of a publication, and the keys.

A channel's state is two keys that share a hash tag (so that one script
may touch both on a Redis Cluster, on the shard that also carries the
channel's broker channel):

* ``<tag>:m:<channel>``, a hash: ``o`` the last offset, ``e`` the epoch;
* ``<tag>:h:<channel>``, a stream of ``o`` (offset) and ``d`` (data)
  entries, trimmed by count (``MAXLEN``) and by age (``MINID``, the
  entries' IDs being Redis' clock).

Both expire ``history_ttl`` after the last publication. A missing hash means
the history is gone (expired, flushed, a failover that lost writes): the next
publish or read starts a new epoch at offset 0.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from squall.pubsub._types import HistoryResult, Position, Publication


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


# Publish: one atomic step on the channel's shard. KEYS: meta, stream.
# ARGV: channel, data, history_size, ttl_ms, new epoch, PUBLISH or SPUBLISH,
# broker channel, marker.
PUBLISH_LUA = """
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
  redis.call('DEL', KEYS[2])
end
local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
local ttl = tonumber(ARGV[4])
redis.call('PEXPIRE', KEYS[1], ttl)
local size = tonumber(ARGV[3])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, '*', 'o', offset, 'd', ARGV[2])
  local now = redis.call('TIME')
  local minid = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - ttl
  if minid > 0 then
    redis.call('XTRIM', KEYS[2], 'MINID', minid)
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call(ARGV[6], ARGV[7], ARGV[8] .. offset .. ' ' .. epoch .. ' ' .. #ARGV[1] .. ' ' .. ARGV[1] .. ARGV[2])
return {offset, epoch}
"""

# Read the top and, when asked, the newest entries. KEYS: meta, stream.
# ARGV: since offset (-1: none), how many at most, new epoch, ttl_ms.
READ_LUA = """
local meta = redis.call('HMGET', KEYS[1], 'o', 'e')
local epoch = meta[2]
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('DEL', KEYS[2])
  return {0, epoch}
end
local top = tonumber(meta[1])
local since = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local n = cap
if since >= 0 then
  n = top - since
  if n > cap then
    n = 0
  end
end
if n <= 0 then
  return {top, epoch}
end
local now = redis.call('TIME')
local minid = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[4])
if minid > 0 then
  redis.call('XTRIM', KEYS[2], 'MINID', minid)
end
return {top, epoch, redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n)}
"""

# Presence: a sorted set (client -> expiry ms) and a hash (client -> info).
# KEYS: zset, hash. ARGV: ttl_ms, then client, info pairs.
PRESENCE_SET_LUA = """
local now = redis.call('TIME')
local ttl = tonumber(ARGV[1])
local expires = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + ttl
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], expires, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"""

# KEYS: zset, hash. ARGV: client.
PRESENCE_REMOVE_LUA = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# KEYS: zset, hash. ARGV: limit (0: count only). Drops up to 1000 expired
# entries on the way, so that a channel whose process died shrinks.
PRESENCE_GET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1000)
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('HDEL', KEYS[2], unpack(gone))
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
# PUBLISHed by something else (redis-cli, an older Squall) is told apart.
MARKER = b"\x1e"


def keys(tag: str, channel: str) -> list[str]:
    """The meta and stream keys of ``channel`` under hash tag ``tag``."""
    return [f"{tag}:m:{channel}", f"{tag}:h:{channel}"]


def presence_keys(tag: str, channel: str) -> list[str]:
    """The presence sorted set and hash of ``channel`` under hash tag ``tag``."""
    return [f"{tag}:p:{channel}", f"{tag}:i:{channel}"]


class RedisPresence:
    """The presence hooks for the Redis engines (mixed in before `PubSub`)."""

    presence_ttl: float
    _presence_scripts: tuple[Any, Any, Any]

    def _tag(self, channel: str) -> str:
        raise NotImplementedError

    async def _before(self) -> None:
        """Called before each command (the cluster engine initialises its client)."""

    def _setup_presence(self, client: Any) -> None:
        self._presence_scripts = (
            client.register_script(PRESENCE_SET_LUA),
            client.register_script(PRESENCE_REMOVE_LUA),
            client.register_script(PRESENCE_GET_LUA),
        )

    async def _run(self, which: int, channel: str, args: list[Any]) -> Any:
        await self._before()
        script = self._presence_scripts[which]
        lost: tuple[type[BaseException], ...] = self._lost_errors  # type: ignore[attr-defined]
        try:
            return await script(keys=presence_keys(self._tag(channel), channel), args=args)
        except lost as exc:
            raise ConnectionError(f"presence on Redis failed: {exc}") from exc

    async def _presence_set(self, channel: str, entries: dict[str, str]) -> None:
        ttl_ms = max(1, int(self.presence_ttl * 1000))
        items = list(entries.items())
        for start in range(0, len(items), 500):  # bounded script arguments
            args: list[Any] = [ttl_ms]
            for client, info in items[start : start + 500]:
                args += [client, info]
            await self._run(0, channel, args)

    async def _presence_remove(self, channel: str, client: str) -> None:
        await self._run(1, channel, [client])

    async def _presence_get(self, channel: str, limit: int) -> dict[str, str]:
        here, infos = await self._run(2, channel, [limit])
        return {
            c.decode("utf-8", "replace"): (i or b"").decode("utf-8", "replace")
            for c, i in zip(here, infos, strict=True)
        }

    async def _presence_count(self, channel: str) -> int:
        return int(await self._run(2, channel, [0]))


def decode(raw: bytes) -> Optional[Publication]:
    """A publication from its wire form; None for a message not ours."""
    if raw[:1] != MARKER:
        return None
    try:
        offset, epoch, size, rest = raw[1:].split(b" ", 3)
        n = int(size)
        return Publication(
            rest[:n].decode("utf-8"),
            rest[n:].decode("utf-8", "replace"),
            Position(int(offset), epoch.decode("ascii")),
        )
    except (ValueError, UnicodeDecodeError):
        return None


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
            )
        )
    return pubs


def read_args(since: Optional[Position], limit: int, strict: bool, history_size: int) -> int:
    """The script's "how many at most": all or nothing for a recovery, else
    the whole window, so that the oldest ``limit`` after ``since`` are in it."""
    if strict or since is None:
        return limit
    return max(limit, history_size)


def window(
    channel: str,
    reply: Any,
    since: Optional[Position],
    limit: int,
) -> HistoryResult:
    """A `HistoryResult` from a read script's reply."""
    from squall.pubsub._local import _window

    return _window(entries_of(channel, reply), top_of(reply), since, limit)
