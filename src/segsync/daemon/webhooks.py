"""CRM webhooks: ``POST /webhooks/<kind>/<source>[/<secret>]``, form-encoded, answered in microseconds.

The receiver knows no CRM: the source's connector verifies and parses the call
(``parse_webhook``), and the receiver only hands the hints to the source's worker, in memory.
It is a bare ASGI app rather than a framework route because bursts are the normal case (a
Bitrix24 workflow touching 10,000 deals sends 10,000 calls, and amoCRM waits only 2 s for each):
the framework's per-request machinery would cost more than the work itself.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

from segsync.daemon.worker import SourceWorker
from segsync.errors import WebhookRejected
from segsync.logs import get_logger
from segsync.metrics import WEBHOOKS

log = get_logger("segsync.daemon.webhooks")

MAX_BODY_BYTES = 1 << 20
WARN_EVERY = 60.0  # seconds between log lines about refused webhooks of one source

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class WorkerDirectory(Protocol):
    def workers(self) -> Mapping[str, SourceWorker]: ...


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _answer(send: Send, status: int, text: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(text)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})


class WebhookReceiver:
    """The ASGI app behind ``/webhooks/``."""

    def __init__(self, directory: WorkerDirectory):
        self.directory = directory
        self._last_warning: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = scope["path"].split("/")  # ["", "webhooks", kind, source, secret?]
        if len(parts) not in (4, 5):
            return await _answer(send, 404, b"not found\n")
        if scope["method"] != "POST":
            return await _answer(send, 405, b"POST only\n")
        kind, name = parts[2], parts[3]
        secret = parts[4] if len(parts) == 5 and parts[4] else None
        worker = self.directory.workers().get(name)
        if worker is None or worker.source.kind != kind:
            WEBHOOKS.labels("", "unknown_source").inc()  # never a label from the request: bounded cardinality
            return await _answer(send, 404, b"unknown source\n")
        try:
            body = await _read_body(receive, MAX_BODY_BYTES)
        except _TooLarge:
            WEBHOOKS.labels(name, "invalid").inc()
            return await _answer(send, 413, b"too large\n")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            hints = worker.parser().parse_webhook(secret, form)
        except WebhookRejected as exc:
            WEBHOOKS.labels(name, "rejected").inc()
            self._warn(name, exc.status, str(exc))
            return await _answer(send, exc.status if exc.status in (401, 403) else 403, b"rejected\n")
        except Exception as exc:  # a payload the connector cannot read: tell the sender, keep serving
            WEBHOOKS.labels(name, "invalid").inc()
            self._warn(name, 400, f"{type(exc).__name__}: {exc}"[:300])
            return await _answer(send, 400, b"invalid\n")
        WEBHOOKS.labels(name, "accepted").inc()
        worker.on_hints(hints)
        return await _answer(send, 200, b"ok\n")

    def _warn(self, source: str, status: int, reason: str) -> None:
        """Refusals are counted always but logged at most once a minute per source (a flood stays a metric)."""
        now = time.monotonic()
        if now - self._last_warning.get(source, -WARN_EVERY) >= WARN_EVERY:
            self._last_warning[source] = now
            log.warning("webhook_rejected", source=source, status=status, reason=reason)
