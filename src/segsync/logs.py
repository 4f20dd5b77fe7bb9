"""Structured logging with secret and personal-data redaction.

Logs go to journald, Docker and log shippers that many people can read, so the redactor runs on
every event — ours and the standard-library ones (httpx, uvicorn, alembic) — as the last step
before rendering: by key name, by known secret value, and by pattern (webhook URLs, bearer tokens,
e-mail addresses, phone numbers). Logs carry IDs, never names, phones or e-mails.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any

import structlog

MASK = "***"

_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|authorization|api[_-]?key|webhook_url|client_secret|refresh|"
    r"application_token|^code$|^auth$|cookie|dsn)",
    re.IGNORECASE,
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Bitrix24 inbound webhook: /rest/<user>/<code>/...
    (re.compile(r"(/rest/\d+/)[A-Za-z0-9_]{4,}"), r"\1" + MASK),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + MASK),
    (
        re.compile(
            r"(?i)((?:access_token|refresh_token|client_secret|application_token|auth|code|password)"
            r"[\"']?\s*[=:]\s*[\"']?)[^&\s\"',;}]+"
        ),
        r"\1" + MASK,
    ),
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), MASK),  # JWT
    (re.compile(r"(?i)(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]+:)[^@\s]+@"), r"\1" + MASK + "@"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "<email>"),
    (re.compile(r"\+\d[\d\s().-]{6,}\d"), "<phone>"),
    (re.compile(r"\b[78][\s(-]*\d{3}[\s)-]*\d{3}[\s-]?\d{2}[\s-]?\d{2}\b"), "<phone>"),
]

_known_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it later appears in a log line."""
    if value and len(value) >= 6:
        with _lock:
            _known_secrets.add(value)


def redact_text(text: str) -> str:
    """Mask known secrets and secret-looking patterns in free text."""
    if _known_secrets:
        for secret in sorted(_known_secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_value(value: Any, key: str | None = None) -> Any:
    """Redact a log field recursively; fields whose *name* says "secret" are masked whole."""
    if key is not None and _SECRET_KEY.search(key) and value not in (None, "", False):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [redact_value(v) for v in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_text(str(value))


def redact_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the last step before rendering."""
    return {k: (redact_value(v) if k == "event" else redact_value(v, k)) for k, v in event_dict.items()}


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Configure structlog and the standard library once per process.

    ``fmt="auto"`` renders for humans on a TTY and JSON lines otherwise (journald, Docker).
    """
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not getattr(stream, "isatty", lambda: False)())
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())
    )
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_processor,
            renderer,
        ],
    )
    if use_json and _is_journal(stream):
        formatter = _JournalFormatter(foreign_pre_chain=formatter.foreign_pre_chain, processors=formatter.processors)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # httpx logs full request URLs at INFO; a Bitrix24 webhook URL *is* a secret.
    for noisy in ("httpx", "httpcore", "apscheduler.executors.default", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


class _JournalFormatter(structlog.stdlib.ProcessorFormatter):
    """journald keeps JSON lines as they are but reads a ``<N>`` syslog-priority prefix, so that
    ``journalctl -p warning`` works (sd-daemon(3)); the JSON itself stays one object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_syslog_priority(record.levelno)}>{super().format(record)}"


def _syslog_priority(levelno: int) -> int:
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7


def _is_journal(stream: Any) -> bool:
    """True when ``stream`` is the journal stream systemd announced in ``$JOURNAL_STREAM`` (``dev:inode``)."""
    announced = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in announced:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return announced == f"{st.st_dev}:{st.st_ino}"


def get_logger(name: str | None = None, **bound: Any) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name, **bound)


def known_secrets() -> Iterable[str]:
    """For tests: the secret values registered so far."""
    return tuple(_known_secrets)
