"""The Redis Cluster engine of squall.pubsub: sharded pub/sub over hash-tagged partitions.

Classic ``PUBLISH`` on a Redis Cluster is copied to every node, so its cost
grows with the cluster. Sharded pub/sub (``SPUBLISH``/``SSUBSCRIBE``, Redis
7) keeps a message on the shard that owns its channel's slot. Squall maps
each channel to one of ``partitions`` broker channels, ``{sq.<n>}`` (a hash
tag, so the partition's slot is fixed), and a process:

* holds one subscription connection per shard (node) it needs, carrying the
  partitions that shard owns, never one per channel;
* subscribes to a partition only while it has a local subscriber on one of
  its channels, and unsubscribes when the last one leaves;
* follows the cluster by itself: a connection lost (a primary killed), a
  ``sunsubscribe`` pushed by the server (its slot moved, or the node became
  a replica) or a ``MOVED`` reply makes it read the slot map again and
  subscribe the partitions where they now are, with backoff; the time from
  the loss to the last partition subscribed again is logged on
  ``squall.general`` and kept in ``PubSub.status``.

A channel's offset, epoch and history keys carry its partition's hash tag,
so the publish script (offset, history, ``SPUBLISH``) runs atomically on the
partition's shard. ``sharded=False`` publishes with classic ``PUBLISH`` and
subscribes on one node of the cluster (for comparison).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any, Optional
from urllib.parse import parse_qsl, unquote, urlsplit

from squall.log import gen_log
from squall.pubsub import _redis_scripts as scripts
from squall.pubsub._base import DEFAULT_HISTORY_TTL, DEFAULT_MAX_PENDING, DEFAULT_MAX_RECOVERY
from squall.pubsub._presence import DEFAULT_PRESENCE_TTL
from squall.pubsub._publisher import RedisEngine
from squall.pubsub._redis import _redis, lost_errors
from squall.pubsub._supervise import Backoff, Supervised
from squall.pubsub._types import check_seconds

__all__ = ["RedisClusterPubSub"]

_Addr = tuple[str, int]

# Redis' default cluster-node-timeout, and what a publish waits past the
# node timeout by default (the election, a replica's rank delay, the
# client finding the new primary).
_FAILOVER_UNKNOWN = 15.0
_FAILOVER_MARGIN = 5.0


class _Link:
    """One subscription connection to one node and the partitions it carries."""

    __slots__ = (
        "addr",
        "client",
        "ps",
        "subscribed",
        "confirmed",
        "task",
        "ping_sent",
        "pong_seen",
    )

    def __init__(self, addr: _Addr, client: Any) -> None:
        self.addr = addr
        self.client = client
        self.ps = client.pubsub()
        self.subscribed: set[int] = set()  # asked for
        self.confirmed: set[int] = set()  # the node said yes
        self.task: Optional[asyncio.Task[None]] = None
        self.ping_sent = 0.0  # time.monotonic() of the PING not yet answered
        self.pong_seen = 0.0


def _parse(url: str) -> tuple[list[_Addr], dict[str, str], Optional[str], Optional[str]]:
    parts = urlsplit(url)
    if parts.scheme not in ("redis+cluster", "rediss+cluster"):
        raise ValueError(f"Redis Cluster URL {url!r}: scheme must be redis+cluster")
    hosts = parts.netloc.rsplit("@", 1)[-1]
    user = password = None
    if "@" in parts.netloc:
        auth = parts.netloc.rsplit("@", 1)[0]
        user_part, _, password_part = auth.partition(":")
        user, password = unquote(user_part) or None, unquote(password_part) or None
    addrs = []
    for item in hosts.split(","):
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"Redis Cluster URL {url!r}: {item!r} is not host:port")
        addrs.append((host.strip("[]"), int(port)))
    return addrs, dict(parse_qsl(parts.query)), user, password


class RedisClusterPubSub(RedisEngine):
    """Channels shared by every process connected to one Redis Cluster (``redis+cluster://``).

    Args:
        url: ``redis+cluster://host:port[,host:port...]`` (startup nodes;
            query: ``partitions=128``, ``sharded=1``).
        partitions: how many broker channels the channels map to (the same
            on every process of the application!); default 128.
        sharded: SPUBLISH/SSUBSCRIBE (default) or classic PUBLISH/SUBSCRIBE.
        max_pending: default bound of each `Subscription` (drop-oldest past it).
        history_size: publications kept per channel, in a Redis stream.
        history_ttl: seconds they are kept (and the offsets and epoch).
        max_recovery: the most publications one resubscription returns.
        subscribe_timeout: seconds `~squall.pubsub.PubSub.subscribe` waits
            for the cluster to confirm.
        reconnect_delay: the first step of the backoff before subscribing
            again after a loss; it doubles per failure, and each wait is
            drawn between 0 and the step (full jitter).
        max_reconnect_delay: the largest step.
        max_connections: publishing connections per node; a publish waits for
            its reply, so this bounds what a stalled cluster can hold.
        health_interval: seconds between PINGs on each subscription
            connection; one unanswered by the next is given up, so a node
            that stops answering (SIGSTOP, a partition) is left within about
            two intervals.
        command_timeout: seconds a publish or history read waits for a node.
        publish_timeout: seconds a publish keeps trying while its shard
            refuses or does not answer (a failover), before
            `ConnectionError`; each attempt carries the publish's id, so
            that one applied before its reply was lost is not applied
            again. Default: the cluster's ``cluster-node-timeout`` plus 5 s
            (a failover takes about the node timeout and a second or two),
            or 20 s when the cluster does not say (``CONFIG`` refused).
            Counted from when the shard was found out of reach: once it has
            been for longer, a publish is tried once, not again.
        positions: False: each publish is a plain ``SPUBLISH`` (or
            ``PUBLISH``) of the message on its partition (no script, no
            offset: every position is ``0-redis``, ``has_positions`` is
            False); a copy of a publish tried again is dropped by each
            subscribing process instead of by the shard. Needs
            ``history_size=0``. URL: ``?positions=0``.

    Raises:
        ValueError: ``positions`` is False and ``history_size`` is not 0.
    """

    def __init__(
        self,
        url: str = "redis+cluster://127.0.0.1:7000",
        *,
        partitions: Optional[int] = None,
        sharded: Optional[bool] = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        history_size: int = 0,
        history_ttl: float = DEFAULT_HISTORY_TTL,
        max_recovery: int = DEFAULT_MAX_RECOVERY,
        presence_ttl: float = DEFAULT_PRESENCE_TTL,
        subscribe_timeout: float = 10.0,
        reconnect_delay: float = 0.05,
        max_reconnect_delay: float = 1.0,
        max_connections: int = 32,
        health_interval: float = 1.0,
        command_timeout: float = 2.0,
        publish_timeout: Optional[float] = None,
        positions: bool = True,
    ) -> None:
        super().__init__(
            max_pending,
            history_size=history_size,
            history_ttl=history_ttl,
            max_recovery=max_recovery,
            presence_ttl=presence_ttl,
        )
        addrs, query, user, password = _parse(url)
        if partitions is None:
            text = query.get("partitions", "128")
            if not text.isdigit():
                raise ValueError(f"Redis Cluster URL {url!r}: partitions must be a number")
            partitions = int(text)
        if not 1 <= partitions <= 16384:
            raise ValueError(f"partitions must be 1 to 16384, not {partitions}")
        if sharded is None:
            flag = query.get("sharded", "1")
            if flag not in ("0", "1"):
                raise ValueError(f"Redis Cluster URL {url!r}: sharded must be 0 or 1")
            sharded = flag == "1"
        health_interval = check_seconds("health_interval", health_interval)
        command_timeout = check_seconds("command_timeout", command_timeout)
        # None: the cluster's node timeout plus a margin, once a node says it.
        if publish_timeout is not None:
            publish_timeout = check_seconds("publish_timeout", publish_timeout)
        redis = _redis()

        self.url = url
        self._publish_timeout = publish_timeout
        self.partitions = partitions
        self.sharded = sharded
        self.subscribe_timeout = subscribe_timeout
        self.command_timeout = command_timeout
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.health_interval = health_interval
        self._redis = redis
        self._lost_errors = lost_errors(
            redis,
            redis.exceptions.ClusterError,
            redis.exceptions.ClusterDownError,
            redis.exceptions.SlotNotCoveredError,
        )
        self._auth = {"username": user, "password": password}
        self._ssl = url.startswith("rediss")
        # redis-py does not try a command again by itself (by default it
        # would, ten times, on a lost connection): a publish is tried again
        # by RetriedPublisher, which must know of each attempt that may
        # have been applied, and every other caller has its own retries.
        self._client = redis.asyncio.cluster.RedisCluster(
            startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in addrs],
            max_connections=max_connections,
            socket_timeout=command_timeout,
            socket_connect_timeout=command_timeout,
            ssl=self._ssl,
            retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0),
            **self._auth,
        )
        self._tags = [f"{{sq.{n}}}" for n in range(partitions)]
        self._tag_part = {tag.encode(): n for n, tag in enumerate(self._tags)}
        self._use_redis(
            scripts.RedisSite(
                self._client, "the Redis Cluster", self._lost_errors, self._tag, self._before
            ),
            "SPUBLISH" if sharded else "PUBLISH",
            self._route,
            command_timeout=command_timeout,
            publish_timeout=self._publish_timeout or _FAILOVER_UNKNOWN + _FAILOVER_MARGIN,
            positions=positions,
        )
        # Partition -> how many locally subscribed channels map to it.
        self._want: dict[int, int] = {}
        self._links: dict[_Addr, _Link] = {}
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._lost_parts: dict[int, float] = {}
        self._stale = True
        self._kick = asyncio.Event()
        # The loops that must not die: each runs again, after a jittered
        # delay, whatever it raises.
        self._manager = Supervised(
            "Redis Cluster re-subscription manager",
            self._manage,
            Backoff(reconnect_delay, max_reconnect_delay),
            self._manage_failed,
        )
        self._watchdog = Supervised(
            "Redis Cluster PING watch",
            self._watch,
            Backoff(min(0.05, health_interval), max(health_interval, 0.05)),
        )
        self._classic_turn = 0
        self._initialized = False
        self._init_lock = asyncio.Lock()
        self._outage = 0.0

    # Publishing and history: one script on the partition's shard.

    def partition(self, channel: str) -> int:
        """The partition ``channel`` maps to (the same in every process)."""
        return zlib.crc32(channel.encode("utf-8")) % self.partitions

    async def _before(self) -> None:
        # redis-py 8's cluster client, first used by several commands at
        # once, can break a connection it is opening (AttributeError
        # 'writelines' on None): initialise it once, before anything else.
        if self._initialized:
            return
        async with self._init_lock:
            if not self._initialized:
                try:
                    await self._client.initialize()
                except self._lost_errors as exc:
                    raise ConnectionError(f"cannot reach the Redis Cluster: {exc}") from exc
                self._initialized = True
                if self._publish_timeout is None:
                    self._publisher.timeout = await self._node_timeout() + _FAILOVER_MARGIN

    async def _node_timeout(self) -> float:
        """The cluster's ``cluster-node-timeout`` in seconds, as a node says
        (Redis' default when CONFIG is refused, as managed services do)."""
        try:
            reply = await self._client.config_get(
                "cluster-node-timeout", target_nodes=self._client.get_random_node()
            )
            return int(reply["cluster-node-timeout"]) / 1000
        except (*self._lost_errors, self._redis.exceptions.ResponseError, KeyError, ValueError):
            return _FAILOVER_UNKNOWN

    # A channel's keys carry its partition's hash tag, which is also its
    # broker channel.

    def _tag(self, channel: str) -> str:
        return self._tags[self.partition(channel)]

    def _route(self, channel: str) -> tuple[str, str]:
        tag = self._tags[self.partition(channel)]
        return tag, tag

    async def ping(self) -> bool:
        """True when every primary answers."""
        try:
            return bool(await self._client.ping(target_nodes="primaries"))
        except self._lost_errors:
            return False

    # Subscribing: partitions, links and the manager that reconciles them.

    @property
    def subscribed_partitions(self) -> set[int]:
        """The partitions this process is subscribed to (confirmed by their node)."""
        return {p for link in self._links.values() for p in link.confirmed}

    @property
    def links(self) -> int:
        """Subscription connections open (one per node carrying a needed partition)."""
        return len(self._links)

    async def wait_subscribed(self, timeout: float = 10.0) -> None:
        """Waits until every partition wanted is subscribed.

        Raises:
            TimeoutError: not within ``timeout`` seconds.
        """
        waiting = [f for p, f in self._waiters.items() if p in self._want and not f.done()]
        if waiting:
            await asyncio.wait_for(asyncio.gather(*(asyncio.shield(f) for f in waiting)), timeout)

    def _waiter(self, part: int) -> asyncio.Future[None]:
        future = self._waiters.get(part)
        if future is None or (future.done() and part not in self.subscribed_partitions):
            future = self._waiters[part] = asyncio.get_running_loop().create_future()
        return future

    async def _listen(self, channel: str) -> None:
        part = self.partition(channel)
        self._want[part] = self._want.get(part, 0) + 1
        future = self._waiter(part)
        if future.done():
            return
        self._wake()
        try:
            await asyncio.wait_for(asyncio.shield(future), self.subscribe_timeout)
        except TimeoutError:
            raise ConnectionError(
                f"the Redis Cluster did not confirm the subscription to {channel!r} "
                f"(partition {self._tags[part]}) within {self.subscribe_timeout}s"
            ) from None

    def _forget(self, channel: str) -> None:
        part = self.partition(channel)
        left = self._want.get(part, 0) - 1
        if left > 0:
            self._want[part] = left
            return
        self._want.pop(part, None)
        self._lost_parts.pop(part, None)
        self._wake()

    def _wake(self) -> None:
        if not self._closed:
            self._manager.start()
            self._watchdog.start()
        self._kick.set()

    async def _manage(self) -> None:
        """Reconciles the links with the partitions wanted at each kick (supervised)."""
        while not self._closed:
            await self._kick.wait()
            self._kick.clear()
            await self._reconcile()
            self._manager.backoff.reset()
            self._changed()

    def _manage_failed(self, exc: BaseException) -> bool:
        # Read the map again and try again after the (jittered) delay, so
        # that a cluster in failover is not stormed.
        self._stale = True
        self._set_healthy(False)
        self._kick.set()
        expected = isinstance(exc, (*self._lost_errors, self._redis.exceptions.ResponseError))
        if expected:
            gen_log.info("pubsub: Redis Cluster not reachable yet (%s); retrying", exc)
        return expected

    def _owner(self, part: int) -> _Addr:
        manager = self._client.nodes_manager
        if self.sharded:
            node = manager.get_node_from_slot(self._client.keyslot(self._tags[part]))
            return (node.host, int(node.port))
        # Classic pub/sub reaches every node: keep one, change on a loss.
        nodes = sorted(manager.nodes_cache.values(), key=lambda n: n.name)
        node = nodes[self._classic_turn % len(nodes)]
        return (node.host, int(node.port))

    async def _reconcile(self) -> None:
        if self._stale:
            if self._initialized:
                await self._client.nodes_manager.initialize()
            else:
                await self._before()
            self._stale = False
        desired: dict[_Addr, set[int]] = {}
        for part in self._want:
            desired.setdefault(self._owner(part), set()).add(part)
        for addr, link in list(self._links.items()):
            if addr not in desired:
                await self._drop(link)
        failed: Optional[BaseException] = None
        for addr, parts in desired.items():
            try:
                await self._update(addr, parts)
            except (*self._lost_errors, self._redis.exceptions.ResponseError) as exc:
                # One node down (a failover under way) must not hold up the
                # partitions that live elsewhere.
                failed = failed or exc
        if failed is not None:
            raise failed

    async def _update(self, addr: _Addr, parts: set[int]) -> None:
        link = self._links.get(addr)
        if link is None:
            link = self._links[addr] = _Link(
                addr,
                self._redis.asyncio.Redis(
                    host=addr[0],
                    port=addr[1],
                    ssl=self._ssl,
                    retry=self._redis.asyncio.retry.Retry(self._redis.backoff.NoBackoff(), 0),
                    socket_connect_timeout=2.0,
                    # RESP2, and no timeout on a read (redis-py 8's default
                    # is 5 s): see RedisPubSub's subscriber connection.
                    protocol=2,
                    socket_timeout=None,
                    **self._auth,
                ),
            )
        gone = link.subscribed - parts
        new = parts - link.subscribed
        if gone:
            link.subscribed -= gone
            link.confirmed -= gone
            await self._send(link, "unsubscribe", gone)
        if new:
            link.subscribed |= new
            try:
                await self._send(link, "subscribe", new)
            except BaseException:
                link.subscribed -= new
                self._lose(link.subscribed, f"{addr[0]}:{addr[1]}: subscribe failed")
                link.subscribed.clear()
                await self._drop(link)
                raise
            if link.task is None:
                link.task = asyncio.ensure_future(self._read_link(link))

    async def _send(self, link: _Link, verb: str, parts: set[int]) -> None:
        # Bounded by command_timeout: a link's connection has no timeout on
        # a read (a quiet link is watched by PINGs instead), and the first
        # command makes the connection, whose handshake waits for the node's
        # answer (CLIENT SETINFO), which a stopped node never gives.
        await asyncio.wait_for(self._send_now(link, verb, parts), self.command_timeout)

    async def _send_now(self, link: _Link, verb: str, parts: set[int]) -> None:
        name = ("s" + verb) if self.sharded else verb
        command = getattr(link.ps, name)
        if not self.sharded:
            await command(*(self._tags[p] for p in sorted(parts)))
            return
        # One SSUBSCRIBE names channels of one slot only (Redis answers
        # CROSSSLOT otherwise): one command per partition.
        for p in sorted(parts):
            await command(self._tags[p])

    async def _drop(self, link: _Link) -> None:
        if self._links.get(link.addr) is link:
            del self._links[link.addr]
        if link.task is not None and link.task is not asyncio.current_task():
            link.task.cancel()
        try:
            await link.ps.aclose()
            await link.client.aclose()
        except self._lost_errors + (RuntimeError,):
            pass

    async def _read_link(self, link: _Link) -> None:
        data_kinds = (b"smessage", b"message")
        try:
            # The connection's own read (see RedisPubSub._connection): the
            # PubSub object's get_message cost a node most of its fixed
            # work per message.
            read = link.ps.connection.read_response
            while True:
                reply = await read(disconnect_on_error=False, push_request=True)
                # A push (RESP3) or an array (RESP2) of three; a PING's
                # answer is "PONG" (RESP3) or ["pong", ""] (RESP2).
                if not isinstance(reply, list) or len(reply) != 3:
                    link.pong_seen = time.monotonic()
                    continue
                kind, channel, data = reply
                if kind in data_kinds:
                    self._dispatch_wire(data)
                    continue
                part = self._tag_part.get(channel)
                if part is None:
                    continue
                if kind in (b"ssubscribe", b"subscribe"):
                    if part in link.subscribed:
                        link.confirmed.add(part)
                        self._partition_confirmed(part)
                elif kind in (b"sunsubscribe", b"unsubscribe") and part in link.subscribed:
                    # Not asked for: the server pushed it (the slot moved,
                    # or this node is a replica now).
                    link.subscribed.discard(part)
                    link.confirmed.discard(part)
                    self._lose([part], f"{kind.decode()} pushed by {link.addr[0]}:{link.addr[1]}")
                    self._stale = True
                    self._kick.set()
        except asyncio.CancelledError:
            raise
        except (*self._lost_errors, self._redis.exceptions.ResponseError, RuntimeError) as exc:
            # Lost (a primary gone), or MOVED/CLUSTERDOWN in reply to a
            # subscribe: read the map again and go where the slots are now.
            await self._fail(link, repr(exc))
        except Exception as exc:
            # Anything else (a bug, a reply redis-py could not parse): the
            # link is made again all the same, never left unread.
            gen_log.error(
                "pubsub: reading Redis Cluster link %s:%d failed; subscribing again",
                *link.addr,
                exc_info=exc,
            )
            await self._fail(link, repr(exc))

    async def _fail(self, link: _Link, why: str) -> None:
        """Gives ``link`` up: its partitions are subscribed again where they are now."""
        self._lose(link.subscribed, f"{link.addr[0]}:{link.addr[1]}: {why}")
        link.subscribed.clear()
        link.confirmed.clear()
        if not self.sharded:
            self._classic_turn += 1
        self._stale = True
        await self._drop(link)
        self._kick.set()

    async def _watch(self) -> None:
        """PINGs every link each ``health_interval``; one that has not answered
        the last PING by the next (a node stopped, a network partition that
        keeps the socket open) is given up (supervised)."""
        while not self._closed:
            await asyncio.sleep(self.health_interval)
            now = time.monotonic()
            for link in list(self._links.values()):
                if link.task is None:
                    continue  # not subscribed yet
                if link.ping_sent and link.pong_seen < link.ping_sent:
                    waited = now - link.ping_sent
                    await self._fail(link, f"no answer to PING for {waited:.1f}s")
                    continue
                link.ping_sent = now
                try:
                    await asyncio.wait_for(link.ps.ping(), self.health_interval)
                except self._lost_errors as exc:
                    await self._fail(link, f"PING failed: {exc!r}")
                except (RuntimeError, AttributeError) as exc:
                    await self._fail(link, f"PING failed: {scripts.cut_under(exc)}")

    def _lose(self, parts: Any, why: str) -> None:
        parts = [p for p in parts if p in self._want]
        if not parts:
            return
        now = time.monotonic()
        if not self._lost_parts:
            self._outage = now
            gen_log.warning(
                "pubsub: lost %d Redis Cluster partition subscription(s) (%s); resubscribing",
                len(parts),
                why,
            )
        for part in parts:
            self._lost_parts.setdefault(part, now)
            future = self._waiters.get(part)
            if future is not None and future.done():
                self._waiters[part] = asyncio.get_running_loop().create_future()
        self._set_healthy(False)

    def _partition_confirmed(self, part: int) -> None:
        future = self._waiters.get(part)
        if future is not None and not future.done():
            future.set_result(None)
        self._changed()
        lost_at = self._lost_parts.pop(part, None)
        if lost_at is not None:
            self._catch_up([c for c in self._channels if self.partition(c) == part])
        if lost_at is not None and not self._lost_parts:
            resume = time.monotonic() - self._outage
            self._resubscribed(resume)
            gen_log.warning(
                "pubsub: Redis Cluster partitions subscribed again after %.3fs (%d link(s))",
                resume,
                len(self._links),
            )
        if not self._lost_parts:
            self._set_healthy(True)

    async def close(self) -> None:
        """Unsubscribes everything and closes every connection to the cluster."""
        await super().close()
        await self._manager.stop()
        await self._watchdog.stop()
        for link in list(self._links.values()):
            await self._drop(link)
        for future in self._waiters.values():
            future.cancel()
        await self._client.aclose()
