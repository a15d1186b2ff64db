"""squall run's logging quiets the QUIC stack's per-connection lines at its
INFO level (aioquic's INFO lines, qh3's WARNING for each client close) and
keeps the stack's other warnings."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from squall.cli._logging import setup_logging


@pytest.fixture
def quic_logger() -> Iterator[logging.Logger]:
    # setup_logging changes the root logger, "quic" and "squall.access":
    # each is put back as it was for the tests after these.
    root = logging.getLogger()
    quic = logging.getLogger("quic")
    access = logging.getLogger("squall.access")
    saved = (root.handlers[:], root.level, quic.level, quic.filters[:])
    saved_access = (access.handlers[:], access.propagate, access.level)
    try:
        yield quic
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        quic.setLevel(saved[2])
        quic.filters[:] = saved[3]
        access.handlers[:] = saved_access[0]
        access.propagate = saved_access[1]
        access.setLevel(saved_access[2])


def _kept(quic: logging.Logger, level: int, msg: str, *args: object) -> bool:
    if not quic.isEnabledFor(level):
        return False
    record = quic.makeRecord("quic", level, __file__, 1, msg, args, None)
    return bool(quic.filter(record))


def test_a_clients_close_is_not_a_warning_at_info(quic_logger: logging.Logger) -> None:
    quic_logger.setLevel(logging.NOTSET)
    setup_logging("info")
    assert not _kept(quic_logger, logging.WARNING, "Native peer close: %r", ("peer_closed",))
    assert not _kept(quic_logger, logging.INFO, "Negotiated protocol version %s", "1")
    assert _kept(quic_logger, logging.WARNING, "Packet payload is too short")
    setup_logging("info")  # again: one filter, not two
    assert len(quic_logger.filters) == 1


def test_debug_after_info_lets_the_close_through(quic_logger: logging.Logger) -> None:
    quic_logger.setLevel(logging.NOTSET)
    setup_logging("info")
    quic_logger.setLevel(logging.NOTSET)
    setup_logging("debug")
    assert _kept(quic_logger, logging.WARNING, "Native peer close: %r", ("peer_closed",))


def test_debug_lets_every_line_through(quic_logger: logging.Logger) -> None:
    quic_logger.setLevel(logging.NOTSET)
    setup_logging("debug")
    assert _kept(quic_logger, logging.WARNING, "Native peer close: %r", ("peer_closed",))
    assert _kept(quic_logger, logging.INFO, "Negotiated protocol version %s", "1")
