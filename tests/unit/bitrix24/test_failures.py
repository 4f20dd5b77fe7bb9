"""Error codes → exception types (keyed on the code, not the status)."""

from __future__ import annotations

import pytest

from connectors.bitrix24.failures import classify, oauth_failure
from segsync.errors import (
    AmbiguousWrite,
    FatalCrmError,
    RateLimited,
    ReauthorizationRequired,
    RetriableCrmError,
    Terminal,
    TokenExpired,
    Transient,
)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("QUERY_LIMIT_EXCEEDED", 503, RateLimited),
        ("OPERATION_TIME_LIMIT", 429, RateLimited),
        ("expired_token", 401, TokenExpired),
        ("NO_AUTH_FOUND", 401, FatalCrmError),
        ("insufficient_scope", 403, FatalCrmError),
        ("ACCESS_DENIED", 403, FatalCrmError),
        ("OVERLOAD_LIMIT", 503, FatalCrmError),  # a manual block: 503, yet retrying is pointless
        ("INVALID_CREDENTIALS", 401, FatalCrmError),
        ("PORTAL_DELETED", 500, FatalCrmError),  # 500 per the docs, still fatal
        ("ERROR_METHOD_NOT_FOUND", 404, FatalCrmError),
        ("INTERNAL_SERVER_ERROR", 500, RetriableCrmError),
        ("", 400, FatalCrmError),  # "Parameter 'filter' must be array."
        ("SOMETHING_NEW", 502, RetriableCrmError),
    ],
)
def test_read_classification(code, status, expected):
    exc = classify(code, "text", method="crm.deal.list", status=status, write=False)
    assert type(exc) is expected
    assert exc.code == (code or None) and exc.method == "crm.deal.list"


def test_fatal_messages_tell_what_to_do():
    exc = classify("insufficient_scope", "", method="crm.contact.list", status=403, write=False)
    assert isinstance(exc, Terminal)
    assert "crm.contact.list" in str(exc) and "scope" in str(exc)


def test_server_errors_on_writes_are_ambiguous_but_throttling_is_not():
    assert isinstance(classify("INTERNAL_SERVER_ERROR", "", method="batch", status=500, write=True), AmbiguousWrite)
    limited = classify("QUERY_LIMIT_EXCEEDED", "Too many requests", method="batch", status=503, write=True)
    assert isinstance(limited, RateLimited) and isinstance(limited, Transient)


def test_oauth_errors():
    assert isinstance(oauth_failure("invalid_grant", "bad", 400), ReauthorizationRequired)
    assert isinstance(oauth_failure("", "", 502), RetriableCrmError)
    assert isinstance(oauth_failure("PAYMENT_REQUIRED", "Subscription has been ended", 402), FatalCrmError)
