"""The ASGI lifespan protocol (2.0) from the server's side: `Lifespan`."""

from __future__ import annotations

import asyncio
from typing import Any, Literal, Optional

from squall.asgi._types import ASGI_VERSIONS, ASGIApp, Message, expected
from squall.log import app_log

__all__ = ["Lifespan", "LifespanFailure", "LifespanMode"]

LifespanMode = Literal["auto", "on", "off"]


class LifespanFailure(RuntimeError):
    """The application could not start up or shut down; the message says why."""


class Lifespan:
    """Runs an application's ``lifespan`` scope: `~squall.asgi.ASGIServerDelegate.startup` before serving, `~squall.asgi.ASGIServerDelegate.shutdown` after.

    The application runs in one Task for the server's lifetime. Its
    ``scope["state"]`` is `~squall.asgi.ASGIServerDelegate.state`, which servers copy into each request's
    scope.

    Args:
        app: the ASGI application.
        mode: ``"auto"``: an application that raises before answering
            startup does not support lifespan, and serving goes on (logged at
            INFO); ``"on"``: that is a `LifespanFailure`; ``"off"``: no
            lifespan scope at all.
    """

    def __init__(self, app: ASGIApp, mode: LifespanMode = "auto") -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"lifespan mode must be 'auto', 'on' or 'off', not {mode!r}")
        self.app = app
        self.mode = mode
        #: Shared with the application (``scope["state"]``).
        self.state: dict[str, Any] = {}
        #: Whether the application takes part (False until startup, or if it does not).
        self.supported = False
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._answer: Optional[asyncio.Future[Message]] = None
        self._task: Optional[asyncio.Task[None]] = None
        self._expect = ""

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the application's answer.

        Raises:
            LifespanFailure: ``lifespan.startup.failed``, or (mode "on") the
                application failed or returned without answering.
        """
        if self.mode == "off" or self._task is not None:
            return
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._expect = "startup"
        scope = {"type": "lifespan", "asgi": dict(ASGI_VERSIONS), "state": self.state}
        self._task = loop.create_task(self._main(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        message = await self._answer
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self.supported = True
            return
        if kind == "lifespan.startup.failed":
            raise LifespanFailure(f"application startup failed: {message.get('message', '')}")
        # The application ended (or failed) without answering.
        if self.mode == "on":
            raise LifespanFailure(f"application startup failed: {message.get('message', '')}")
        app_log.info("ASGI 'lifespan' protocol appears unsupported.")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the application's answer.

        Raises:
            LifespanFailure: ``lifespan.shutdown.failed``, or the application
                failed during shutdown.
        """
        task = self._task
        if task is None or not self.supported:
            return
        self._answer = asyncio.get_running_loop().create_future()
        self._expect = "shutdown"
        await self._inbox.put({"type": "lifespan.shutdown"})
        message = await self._answer
        await asyncio.gather(task, return_exceptions=True)
        kind = message.get("type")
        if kind != "lifespan.shutdown.complete":
            raise LifespanFailure(f"application shutdown failed: {message.get('message', '')}")

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        stage = self._expect
        if kind not in (f"lifespan.{stage}.complete", f"lifespan.{stage}.failed"):
            raise expected(
                f"'lifespan.{stage}.complete' or 'lifespan.{stage}.failed'"
                if stage
                else "none before lifespan.startup",
                message,
            )
        self._expect = ""
        self._settle(message)

    def _settle(self, message: Message) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_result(message)

    async def _main(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            self._settle({"type": "cancelled", "message": "cancelled"})
            raise
        except Exception as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # The loop is being torn down without a shutdown: whatever
                # the application sends on its way out is beside the point.
                self._settle({"type": "cancelled", "message": "cancelled"})
                raise asyncio.CancelledError() from exc
            if self.supported or self.mode == "on":
                app_log.error("Exception in 'lifespan' protocol", exc_info=True)
            self._settle({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        else:
            self._settle({"type": "returned", "message": "the application returned"})
