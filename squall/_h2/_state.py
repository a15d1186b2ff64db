"""Stream states of RFC 9113 §5.1, as data.

A stream is in one state; a frame sent or received moves it along the
table below, and nothing else does. Both ends of the connection use the
same table: the server opens a stream by receiving HEADERS, the client by
sending them. The reserved states belong to server push, which this
package never uses (SETTINGS_ENABLE_PUSH is 0 both ways), so they are not
in it.

A state is one object (compared with ``is``) that carries what the hot
path asks of it: whether each direction is open, and where an END_STREAM
sent or received leads (copied from the table, which stays the one
source):

=====================  =============  =============
state                  ``peer_open``  ``self_open``
=====================  =============  =============
``OPEN``               yes            yes
``HALF_CLOSED_LOCAL``  yes            no
``HALF_CLOSED_REMOTE`` no             yes
``CLOSED``             no             no
=====================  =============  =============

``IDLE`` is the state of every stream id not yet used. The connection keeps
no object for an idle or a closed stream (it tells them apart by the
highest id opened), so a stream object's state is one of the other three
and a transition to ``CLOSED`` is where it is forgotten.
"""

from __future__ import annotations

from typing import Final, Optional

__all__ = [
    "CLOSED",
    "HALF_CLOSED_LOCAL",
    "HALF_CLOSED_REMOTE",
    "IDLE",
    "OPEN",
    "TRANSITIONS",
    "State",
    "next_state",
]


class State:
    """One state of §5.1; there is one object per state."""

    __slots__ = ("name", "peer_open", "self_open", "after_send_end", "after_recv_end")

    def __init__(self, name: str, peer_open: bool, self_open: bool) -> None:
        self.name = name
        #: The peer may still send frames that carry the message.
        self.peer_open = peer_open
        #: We may still send them.
        self.self_open = self_open
        # Filled in from TRANSITIONS below: the state after an END_STREAM
        # sent or received, or None where §5.1 does not allow one.
        self.after_send_end: Optional[State] = None
        self.after_recv_end: Optional[State] = None

    def __repr__(self) -> str:
        return self.name


IDLE: Final = State("idle", False, False)
OPEN: Final = State("open", True, True)
HALF_CLOSED_LOCAL: Final = State("half-closed (local)", True, False)
HALF_CLOSED_REMOTE: Final = State("half-closed (remote)", False, True)
CLOSED: Final = State("closed", False, False)

# What moves a stream (the edges of the figure in RFC 9113 §5.1).
SEND_HEADERS: Final = 0
RECV_HEADERS: Final = 1
SEND_END: Final = 2
RECV_END: Final = 3
SEND_RESET: Final = 4
RECV_RESET: Final = 5

#: (state, event) -> next state. A pair that is not here is not allowed:
#: the caller decides whether that is a stream or a connection error
#: (§5.1 says which, frame by frame).
TRANSITIONS: Final[dict[tuple[State, int], State]] = {
    # idle: HEADERS opens the stream, whichever side sends them.
    (IDLE, SEND_HEADERS): OPEN,
    (IDLE, RECV_HEADERS): OPEN,
    # open: either side ends its half with END_STREAM; a reset ends both.
    (OPEN, SEND_HEADERS): OPEN,  # a response head, informational or final
    (OPEN, RECV_HEADERS): OPEN,
    (OPEN, SEND_END): HALF_CLOSED_LOCAL,
    (OPEN, RECV_END): HALF_CLOSED_REMOTE,
    (OPEN, SEND_RESET): CLOSED,
    (OPEN, RECV_RESET): CLOSED,
    # half-closed (local): we are done; the peer's END_STREAM closes it.
    (HALF_CLOSED_LOCAL, RECV_HEADERS): HALF_CLOSED_LOCAL,
    (HALF_CLOSED_LOCAL, RECV_END): CLOSED,
    (HALF_CLOSED_LOCAL, SEND_RESET): CLOSED,
    (HALF_CLOSED_LOCAL, RECV_RESET): CLOSED,
    # half-closed (remote): the peer is done; our END_STREAM closes it.
    (HALF_CLOSED_REMOTE, SEND_HEADERS): HALF_CLOSED_REMOTE,
    (HALF_CLOSED_REMOTE, SEND_END): CLOSED,
    (HALF_CLOSED_REMOTE, SEND_RESET): CLOSED,
    (HALF_CLOSED_REMOTE, RECV_RESET): CLOSED,
}


def next_state(state: State, event: int) -> Optional[State]:
    """The state after ``event``, or None if §5.1 does not allow it."""
    return TRANSITIONS.get((state, event))


for _state in (IDLE, OPEN, HALF_CLOSED_LOCAL, HALF_CLOSED_REMOTE, CLOSED):
    _state.after_send_end = next_state(_state, SEND_END)
    _state.after_recv_end = next_state(_state, RECV_END)
del _state
