"""No secret and no personal data reaches the log output, whichever field or library carries it."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from segsync.logs import configure_logging, register_secret

SECRET = "q7w8e9r0t1y2u3i4"


@pytest.fixture
def log_output():
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    register_secret(SECRET)
    yield stream
    configure_logging("info", "console")


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(
    "fields",
    [
        {"access_token": SECRET},
        {"url": f"https://portal.bitrix24.ru/rest/1/{SECRET}/crm.deal.list.json"},
        {"headers": {"Authorization": f"Bearer {SECRET}"}},
        {"detail": f"refresh failed for refresh_token={SECRET}&client_id=1"},
        {"nested": {"deep": [f"prefix {SECRET} suffix"]}},
        {"client_secret": SECRET},
        {"body": {"auth": {"application_token": SECRET}}},
        {"error": ValueError(f"bad token {SECRET}")},
    ],
)
def test_secret_never_reaches_output(log_output, fields):
    structlog.get_logger("t").info("event", **fields)
    assert SECRET not in log_output.getvalue()
    assert _lines(log_output)


def test_secret_in_event_text_and_exceptions(log_output):
    log = structlog.get_logger("t")
    log.warning(f"connect to https://x.bitrix24.ru/rest/7/{SECRET}/ failed")
    try:
        raise RuntimeError(f"token {SECRET} rejected")
    except RuntimeError:
        log.exception("boom")
    assert SECRET not in log_output.getvalue()


def test_stdlib_loggers_are_redacted_too(log_output):
    logging.getLogger("uvicorn.error").warning("request with access_token=%s", SECRET)
    logging.getLogger("some.lib").error("webhook https://p.bitrix24.ru/rest/1/abcdefgh1234/profile")
    out = log_output.getvalue()
    assert SECRET not in out and "abcdefgh1234" not in out


def test_personal_data_is_masked(log_output):
    structlog.get_logger("t").info("contact", note="Иван, ivan.petrov@example.ru, +7 (912) 345-67-89, 89123456789")
    out = log_output.getvalue()
    assert "ivan.petrov@example.ru" not in out and "345-67-89" not in out and "89123456789" not in out
    assert "<email>" in out and "<phone>" in out


def test_ids_survive(log_output):
    structlog.get_logger("t").info("pulled", source_id=3, remote_id="123456", rows=2500)
    line = _lines(log_output)[-1]
    assert line["remote_id"] == "123456" and line["rows"] == 2500
