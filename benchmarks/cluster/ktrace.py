"""The kernel's receive work billed to processes, traced with ftrace (root).

A veth hands each packet to its peer in the sender's own softirq: with
``STEER=0``, what a node sends is received (bridge, netfilter, the client's
TCP input) on the node's CPU and billed to the node, which no real machine
pays for its peers. `NetRxTrace` traces every ``NET_RX`` softirq
(``irq:softirq_entry``/``softirq_exit``, ``vec == 3``) in a tracefs
instance of its own and adds up, per process, the time of those that ran
while it was the current task: the node's CPU less that is its own work,
counted the same way for every framework.

Only where tracefs can be used (root; mounted here if it is not, and
unmounted after): `NetRxTrace.open` returns None otherwise.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import threading
from collections import defaultdict
from pathlib import Path
from typing import Optional

TRACEFS = Path("/sys/kernel/tracing")
# "  python3-1234    [000] ..s1. 12345.678901: softirq_entry: vec=3 [action=NET_RX]"
_LINE = re.compile(rb"-(\d+)\s+\[(\d+)\].*?\s(\d+\.\d+): softirq_(entry|exit): vec=3\b")


class NetRxTrace:
    """``NET_RX`` softirq seconds per pid, from `start` to `stop`."""

    def __init__(self, instance: Path, mounted: bool) -> None:
        self.instance = instance
        self.mounted = mounted
        self.seconds: dict[int, float] = defaultdict(float)
        self._open: dict[int, tuple[int, float]] = {}  # cpu -> (pid, entry time)
        self._reader: Optional[threading.Thread] = None
        self._done = threading.Event()

    @classmethod
    def open(cls) -> Optional[NetRxTrace]:
        if os.geteuid() != 0:
            return None
        mounted = False
        if not (TRACEFS / "instances").is_dir():
            done = subprocess.run(
                ["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True, check=False
            )
            if done.returncode != 0 or not (TRACEFS / "instances").is_dir():
                return None
            mounted = True
        instance = TRACEFS / "instances" / f"squall-lab-{os.getpid()}"
        try:
            instance.mkdir()
            events = instance / "events" / "irq"
            for name in ("softirq_entry", "softirq_exit"):
                (events / name / "filter").write_text("vec == 3\n")
                (events / name / "enable").write_text("1\n")
            (instance / "buffer_size_kb").write_text("8192\n")
        except OSError:
            cls._remove(instance, mounted)
            return None
        return cls(instance, mounted)

    def start(self) -> None:
        """Clears what was counted and starts reading the trace."""
        self.seconds.clear()
        self._open.clear()
        self._done = threading.Event()
        (self.instance / "trace").write_text("")
        (self.instance / "tracing_on").write_text("1\n")
        # Not blocking: the reader looks at its stop flag between reads, and
        # closes the pipe itself (a read blocked on it would keep it busy).
        fd = os.open(self.instance / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        self._reader = threading.Thread(target=self._read, args=(fd,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        pending = b""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            while True:
                stopping = self._done.is_set()
                poller.poll(100)
                while True:
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    if not chunk:
                        break
                    lines = (pending + chunk).split(b"\n")
                    pending = lines.pop()
                    for line in lines:
                        self.feed(line)
                if stopping:
                    return
        finally:
            os.close(fd)

    def feed(self, line: bytes) -> None:
        """Counts one line of the trace."""
        match = _LINE.search(line)
        if match is None:
            return
        pid, cpu, stamp = int(match[1]), int(match[2]), float(match[3])
        if match[4] == b"entry":
            self._open[cpu] = (pid, stamp)
            return
        began = self._open.pop(cpu, None)
        if began is not None and began[0] == pid:
            self.seconds[pid] += stamp - began[1]

    def stop(self) -> dict[int, float]:
        """Stops tracing; the NET_RX seconds per pid since `start`."""
        (self.instance / "tracing_on").write_text("0\n")
        self._done.set()
        if self._reader is not None:
            self._reader.join(10)
        return dict(self.seconds)

    def close(self) -> None:
        self._remove(self.instance, self.mounted)

    @staticmethod
    def _remove(instance: Path, mounted: bool) -> None:
        try:
            (instance / "tracing_on").write_text("0\n")
            for name in ("softirq_entry", "softirq_exit"):
                (instance / "events" / "irq" / name / "enable").write_text("0\n")
            instance.rmdir()
        except OSError:
            pass
        if mounted:
            subprocess.run(["umount", str(TRACEFS)], capture_output=True, check=False)
