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
]

# Offsets fit a signed 64-bit integer (Redis INCR's range), so 19 digits.
_MAX_OFFSET_DIGITS = 19
_MAX_EPOCH = 32
_EPOCH_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class PubSubClosedError(RuntimeError):
    """The subscription or the `PubSub` it belongs to was closed."""


def new_epoch() -> str:
    """A fresh epoch token: 8 URL-safe characters from the OS's random source."""
    return secrets.token_urlsafe(6)


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
    """One message as published on a channel, with its position."""

    channel: str
    data: str
    position: Position


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
    last_resume: float = 0.0
    round_trip: float = 0.0
    since: float = dataclasses.field(default_factory=time.monotonic)
