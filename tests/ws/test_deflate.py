from __future__ import annotations

from typing import Any

import pytest

from squall._ws import (
    HandshakeError,
    Message,
    PerMessageDeflate,
    WSConnection,
    client_accept,
    client_offer,
    parse_extensions,
    server_accept,
)


def test_parse_extensions() -> None:
    assert parse_extensions("") == []
    assert parse_extensions(
        'permessage-deflate; client_max_window_bits; server_max_window_bits="10", x-foo'
    ) == [
        (
            "permessage-deflate",
            [("client_max_window_bits", None), ("server_max_window_bits", "10")],
        ),
        ("x-foo", []),
    ]


@pytest.mark.parametrize("header", ["bad name", "a; =1", "a; b=@", "a; b c"])
def test_parse_extensions_rejects_malformed(header: str) -> None:
    with pytest.raises(HandshakeError):
        parse_extensions(header)


def test_quoted_values_with_separators() -> None:
    assert parse_extensions('a; b="12"; c, d') == [("a", [("b", "12"), ("c", None)]), ("d", [])]
    with pytest.raises(HandshakeError):
        parse_extensions('a; b="x,y"')


@pytest.mark.parametrize(
    ("options", "offer"),
    [
        ({}, "permessage-deflate; client_max_window_bits"),
        (
            {
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
                "server_max_window_bits": 10,
                "client_max_window_bits": 12,
            },
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=12",
        ),
    ],
)
def test_client_offer(options: dict[str, Any], offer: str) -> None:
    assert client_offer(options) == offer


@pytest.mark.parametrize(
    "options",
    [
        {"level": 1},
        {"server_max_window_bits": 8},
        {"client_max_window_bits": 16},
        {"client_max_window_bits": "9"},
    ],
)
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        client_offer(options)
    with pytest.raises(ValueError):
        server_accept("permessage-deflate", options)


@pytest.mark.parametrize(
    ("offer", "options", "answer"),
    [
        ("permessage-deflate", {}, "permessage-deflate"),
        ("permessage-deflate; client_max_window_bits", {}, "permessage-deflate"),
        (
            "permessage-deflate; client_max_window_bits=10",
            {},
            "permessage-deflate; client_max_window_bits=10",
        ),
        (
            "permessage-deflate; client_max_window_bits",
            {"client_max_window_bits": 11},
            "permessage-deflate; client_max_window_bits=11",
        ),
        (
            "permessage-deflate; server_max_window_bits=12",
            {},
            "permessage-deflate; server_max_window_bits=12",
        ),
        (
            "permessage-deflate",
            {"server_max_window_bits": 10, "server_no_context_takeover": True},
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
        ),
        (
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
            {},
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        # The first acceptable offer wins; unknown extensions are skipped.
        ("x-other, permessage-deflate; bogus, permessage-deflate", {}, "permessage-deflate"),
        (
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            {},
            "permessage-deflate",
        ),
    ],
)
def test_server_accepts(offer: str, options: dict[str, Any], answer: str) -> None:
    accepted = server_accept(offer, options)
    assert accepted is not None
    assert accepted[0] == answer


@pytest.mark.parametrize(
    ("offer", "options"),
    [
        ("x-other", {}),
        ("permessage-deflate; server_max_window_bits=16", {}),
        ("permessage-deflate; server_max_window_bits=09", {}),
        ("permessage-deflate; server_max_window_bits", {}),
        ("permessage-deflate; server_no_context_takeover=1", {}),
        ("permessage-deflate; client_max_window_bits; client_max_window_bits", {}),
        ("permessage-deflate", {"client_max_window_bits": 10}),
        ("bad name", {}),
    ],
)
def test_server_declines(offer: str, options: dict[str, Any]) -> None:
    assert server_accept(offer, options) is None


def negotiate(
    client_options: dict[str, Any], server_options: dict[str, Any]
) -> tuple[WSConnection, WSConnection]:
    accepted = server_accept(client_offer(client_options), server_options)
    assert accepted is not None
    answer, server_ext = accepted
    client_ext = client_accept(answer, client_options)
    return WSConnection(True, client_ext), WSConnection(False, server_ext)


@pytest.mark.parametrize(
    ("client_options", "server_options"),
    [
        ({}, {}),
        ({"client_max_window_bits": 9}, {}),
        ({}, {"client_max_window_bits": 9, "server_max_window_bits": 9}),
        ({"server_no_context_takeover": True}, {"client_no_context_takeover": True}),
        ({"compression_level": 1, "mem_level": 3}, {"compression_level": 9, "mem_level": 9}),
    ],
)
def test_negotiated_pairs_talk(
    client_options: dict[str, Any], server_options: dict[str, Any]
) -> None:
    client, srv = negotiate(client_options, server_options)
    text = "squall " * 200
    for _ in range(3):
        assert srv.receive_data(client.send_message(text)) == [Message(text)]
        assert client.receive_data(srv.send_message(text)) == [Message(text)]
    assert client.compressed and srv.compressed


@pytest.mark.parametrize(
    ("answer", "options", "message"),
    [
        ("x-other", {}, "unexpected"),
        ("permessage-deflate, permessage-deflate", {}, "unexpected"),
        ("permessage-deflate; foo", {}, "unknown"),
        ("permessage-deflate; server_no_context_takeover=1", {}, "no value"),
        ("permessage-deflate; client_max_window_bits", {}, "client_max_window_bits"),
        ("permessage-deflate; client_max_window_bits=8", {}, "8"),
        ("permessage-deflate; server_max_window_bits=99", {}, "server_max_window_bits"),
        ("permessage-deflate", {"server_no_context_takeover": True}, "refused"),
        ("permessage-deflate", {"server_max_window_bits": 10}, "refused"),
        (
            "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
            {},
            "duplicate",
        ),
    ],
)
def test_client_rejects_bad_answers(answer: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(HandshakeError, match=message):
        client_accept(answer, options)


def test_window_bits_are_used_for_compression() -> None:
    ext = PerMessageDeflate(client=False, server_max_window_bits=9)
    data = bytes(range(256)) * 64
    reader = PerMessageDeflate(client=True)
    assert reader.decompress(ext.compress(data), True, None) == data
