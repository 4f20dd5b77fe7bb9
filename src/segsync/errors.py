"""One exception tree for the whole service.

Retry semantics live on the type, not in the caller (singer-sdk / dlt style): anything that
inherits :class:`Transient` may be retried with backoff, anything :class:`Terminal` must stop the
unit of work it belongs to (a source, a command) and be reported once.
"""

from __future__ import annotations

from dataclasses import dataclass


class Transient:
    """Marker: the same call may succeed later (timeouts, 5xx, throttling)."""


class Terminal:
    """Marker: retrying cannot help; a human or a config change must act."""


class SegsyncError(Exception):
    """Root of every error segsync raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a rules file, located well enough for an editor to jump to it."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(SegsyncError, Terminal):
    """The rules file or settings are invalid; carries every issue found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class ExpressionError(SegsyncError, Terminal):
    """A rule condition (``where:``) does not parse or names an unknown column."""

    def __init__(self, message: str, *, token: str | None = None, position: int | None = None):
        self.token = token
        self.position = position
        super().__init__(message)


class StoreError(SegsyncError):
    """The local store is unusable (migration missing, second daemon on one SQLite file, ...)."""


class CrmError(SegsyncError):
    """A CRM API call failed. ``code`` is the CRM's own error code when it sent one."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        code: str | None = None,
        status: int | None = None,
        method: str | None = None,
    ):
        self.source = source
        self.code = code
        self.status = status
        self.method = method
        super().__init__(message)


class RetriableCrmError(CrmError, Transient):
    """5xx, HTML instead of JSON, timeouts, connection resets."""


class RateLimited(RetriableCrmError):
    """The CRM asked us to slow down; ``retry_after`` is seconds to wait when it said so."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        self.retry_after = retry_after
        super().__init__(message, **kw)


class TokenExpired(RetriableCrmError):
    """The access token expired: refresh once, then repeat the call."""


class FatalCrmError(CrmError, Terminal):
    """The source must stop (wrong credentials, missing scope, a block by the CRM)."""


class ReauthorizationRequired(FatalCrmError):
    """The refresh token is dead or revoked: an admin must authorize segsync again."""


class AmbiguousWrite(CrmError):
    """A write may or may not have reached the CRM (timeout after sending): reconcile, never resend blindly."""


class RecordRejected(SegsyncError):
    """A CRM record cannot be mapped to the normalized model; it is quarantined with ``reason``."""

    def __init__(self, reason: str, *, remote_id: str | None = None):
        self.reason = reason
        self.remote_id = remote_id
        super().__init__(reason)


class WebhookRejected(SegsyncError):
    """An incoming webhook failed verification (wrong token/secret/account): answer ``status``, count it."""

    def __init__(self, message: str, *, status: int = 403):
        self.status = status
        super().__init__(message)
