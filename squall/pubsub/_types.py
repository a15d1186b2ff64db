"""Positions, publications and history results: the values every engine shares."""

from __future__ import annotations

import dataclasses
import secrets
import time

__all__ = [
    "Position",
    "Publication",
    "HistoryResult",
    "PubSubClosedError",
    "Status",
    "new_epoch",
    "MAX_CHANNEL_BYTES",
    "check_channel",
    "check_message",
]

#: The longest channel name, in bytes of UTF-8, on every engine. Chosen for
#: NATS: a channel travels as the subject ``sq.<base64url of the name>``
#: (4/3 of its bytes), so a SUB or PUB line stays near 1,400 bytes, well
#: under nats-server's 4,096-byte control line (past which the server closes
#: the connection). It also bounds what one client's channel names cost in
#: memory and in Redis keys.
MAX_CHANNEL_BYTES = 1024

# What presence_channel() appends to a channel: its names may be that much
# longer (the presence channel of any channel can be subscribed to).
PRESENCE_SUFFIX = "\x1fpresence"

# Offsets fit a signed 64-bit integer (Redis INCR's range), so 19 digits.
_MAX_OFFSET_DIGITS = 19
_MAX_EPOCH = 32
_EPOCH_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class PubSubClosedError(RuntimeError):
    """The subscription or the `PubSub` it belongs to was closed."""


class PublishUncertainError(ConnectionError):
    """A publish may or may not have been applied, and was not tried again.

    Raised by the Redis engines' ``publish`` when an attempt got no answer
    (the primary killed or cut off after it was sent) and the broker's
    replication history changed before the attempt could be made again (a
    failover): the lost primary may have applied it, and handed it to
    subscribers live, without its replica receiving it. Made again on the
    promoted replica it would be a second copy under another position,
    which readers resuming from history would get twice; so the publish is
    given up, and the caller decides (publishing again accepts a second
    copy; a message with its own id lets the page drop one). A subclass of
    `ConnectionError`, which the other publish failures raise.
    """


def new_epoch() -> str:
    """A fresh epoch token: 8 URL-safe characters from the OS's random source."""
    return secrets.token_urlsafe(6)


def check_channel(channel: object) -> str:
    """``channel`` if every engine can carry it as a channel name.

    A name is a non-empty str of at most ``MAX_CHANNEL_BYTES`` bytes in UTF-8
    (its presence channel, `presence_channel`, that much plus the suffix),
    encodable in UTF-8 (no lone surrogate such as ``"\\ud800"``, which JSON
    may carry but no broker can). Any other character, control characters
    and NUL included, is carried by every engine (Redis channels are bytes,
    NATS subjects carry the name in base64).

    Raises:
        TypeError: ``channel`` is not a str.
        ValueError: it is empty, too long or not encodable (the message says which).
    """
    if not isinstance(channel, str):
        raise TypeError(f"channel must be a str, not {type(channel).__name__}")
    if not channel:
        raise ValueError("a channel name must not be empty")
    if len(channel) <= MAX_CHANNEL_BYTES and channel.isascii():
        return channel
    limit = MAX_CHANNEL_BYTES
    if channel.endswith(PRESENCE_SUFFIX):
        limit += len(PRESENCE_SUFFIX)
    # A character is at least one byte: a name longer in characters is too long.
    size = len(channel)
    if size <= limit:
        try:
            size = len(channel.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"channel name {channel[:60]!r}: character {exc.start} "
                f"({channel[exc.start]!r}) cannot be encoded in UTF-8 (a lone surrogate)"
            ) from None
    if size > limit:
        raise ValueError(
            f"channel name {channel[:40]!r}... is too long: at least {size} bytes in UTF-8, "
            f"where a channel name is at most {MAX_CHANNEL_BYTES}"
        )
    return channel


def check_message(message: object) -> str:
    """``message`` if every engine and transport can carry it: a str encodable in UTF-8.

    Raises:
        TypeError: ``message`` is not a str.
        ValueError: it holds a lone surrogate (the message says where).
    """
    if not isinstance(message, str):
        raise TypeError(f"message must be a str, not {type(message).__name__}")
    return check_utf8("message", message)


def check_utf8(what: str, text: str) -> str:
    """``text`` if it can be encoded in UTF-8.

    Raises:
        ValueError: naming ``what`` and where its lone surrogate is.
    """
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{what}: character {exc.start} ({text[exc.start]!r}) cannot be encoded "
                "in UTF-8 (a lone surrogate)"
            ) from None
    return text


def check_seconds(what: str, value: object) -> float:
    """``value`` as a float, if it is a number of seconds above 0.

    Raises:
        ValueError: naming ``what`` and the value refused.
    """
    if not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{what} must be a number of seconds above 0, not {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True, slots=True)
class Position:
    """Where a publication stands in its channel's stream.

    Attributes:
        offset: grows by one per publication on the channel; the first is 1,
            and 0 means "before any".
        epoch: changes when the broker lost the channel's history, so an
            offset from another epoch says nothing about this one.
    """

    offset: int
    epoch: str

    def __str__(self) -> str:
        return f"{self.offset}-{self.epoch}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """The position written by ``str(position)``: ``"<offset>-<epoch>"``.

        Raises:
            ValueError: ``text`` is not such a position (the message says why).
        """
        if not isinstance(text, str):
            raise TypeError(f"a position is parsed from a str, not {type(text).__name__}")
        if len(text) > _MAX_OFFSET_DIGITS + 1 + _MAX_EPOCH:
            raise ValueError(f"position too long ({len(text)} characters): {text[:60]!r}...")
        offset, sep, epoch = text.partition("-")
        if not sep:
            raise ValueError(f"position {text!r} is not <offset>-<epoch>")
        if not offset or not offset.isascii() or not offset.isdigit():
            raise ValueError(
                f"position {text!r}: the offset must be a non-negative decimal integer"
            )
        if len(offset) > _MAX_OFFSET_DIGITS:
            raise ValueError(f"position {text!r}: offset out of range")
        if not epoch or len(epoch) > _MAX_EPOCH or not _EPOCH_CHARS.issuperset(epoch):
            raise ValueError(
                f"position {text!r}: the epoch must be 1 to {_MAX_EPOCH} characters of "
                "[A-Za-z0-9_-]"
            )
        return cls(int(offset), epoch)


@dataclasses.dataclass(frozen=True, slots=True)
class Publication:
    """One message as published on a channel, with its position.

    Attributes:
        channel: the channel.
        data: the message.
        position: where it stands in the channel's stream.
        origin: which publish made it (``"<publisher>.<count>"``) where the
            engine says so (the Redis engines), else ``""``. A copy of one
            publish (applied again after a failover lost the record that it
            had been) has the same origin at another position: a
            subscribing process hands out the first it gets, not the copy.
            Not compared: two publications are equal by channel, data and
            position.
    """

    channel: str
    data: str
    position: Position
    origin: str = dataclasses.field(default="", compare=False, repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryResult:
    """What `PubSub.history` read.

    Attributes:
        publications: oldest first.
        position: the channel's top (last offset and epoch) when read.
        recovered: True when ``publications`` is every publication after the
            position asked for; False when that position is older than the
            kept window, from another epoch or from the future, or when the
            limit cut the list.
    """

    publications: list[Publication]
    position: Position
    recovered: bool


@dataclasses.dataclass(slots=True)
class Status:
    """Counters and health of one `PubSub` (read them, do not set them).

    Attributes:
        healthy: False while the engine cannot reach its broker; local
            subscriptions stay open and get what comes once it is back.
        published: publications sent by this object.
        delivered: publications handed to local subscriptions and relays.
        dropped: publications a slow local subscription discarded.
        missed: publications this process never received (offsets skipped
            on a channel it was subscribed to: a broker outage longer than
            the history kept, or no history).
        resubscribes: times the engine subscribed again after losing the
            broker (a failover, a slot move, a restart).
        renewed: new epochs this process began on a channel: its publish
            or history read found the channel's state written under another
            replication history (a failover or a restart of the broker), or
            the broker gave offsets this process had handed out again, or
            had its top below this process's last publish (see the pubsub
            guide's "Through a failover"). When another process began the
            channel's new epoch first, this one follows it and does not
            count it.
        last_resume: seconds the last resubscription took, from noticing the
            loss to being subscribed again.
        round_trip: seconds of the last publish's round trip to the broker.
        since: `time.monotonic` when ``healthy`` last changed.
    """

    healthy: bool = True
    published: int = 0
    delivered: int = 0
    dropped: int = 0
    missed: int = 0
    resubscribes: int = 0
    renewed: int = 0
    last_resume: float = 0.0
    round_trip: float = 0.0
    since: float = dataclasses.field(default_factory=time.monotonic)
