"""Outgoing-webhook events: verification and hints."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from segsync.contract import ChangeHint
from segsync.errors import WebhookRejected

from .conftest import make_source

TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"
# the documented ONCRMDEALADD event for an outgoing webhook, as the form body Bitrix24 posts
BODY = (
    "event=ONCRMDEALADD&event_handler_id=975&data%5BFIELDS%5D%5BID%5D=7405&ts=1766047124"
    "&auth%5Bdomain%5D=some-domain.bitrix24.com&auth%5Bclient_endpoint%5D=https%3A%2F%2Fsome-domain.bitrix24.com%2Frest%2F"
    "&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F&auth%5Bmember_id%5D=d897063e1ce7c5eb9f04b9751eef5915"
    f"&auth%5Bapplication_token%5D={TOKEN}"
)


def _form(body: str = BODY) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body).items()}


@pytest.fixture
def conn():
    from connectors.bitrix24.connector import Bitrix24Connector

    from .conftest import Events

    return Bitrix24Connector(make_source(application_token=TOKEN), Events().context())


def test_documented_event_becomes_a_hint(conn):
    assert conn.parse_webhook(None, _form()) == [ChangeHint("deals", "7405")]


@pytest.mark.parametrize(
    ("event", "hint"),
    [
        ("ONCRMCONTACTUPDATE", ChangeHint("contacts", "7405", kind="contact")),
        ("ONCRMCOMPANYDELETE", ChangeHint("companies", "7405", deleted=True, kind="company")),
        ("ONCRMDEALDELETE", ChangeHint("deals", "7405", deleted=True)),
        ("ONCRMDEALMOVETOCATEGORY", ChangeHint("deals", "7405")),
        ("ONCRMACTIVITYADD", ChangeHint("touches", "7405")),
        ("onCrmDealUpdate", ChangeHint("deals", "7405")),
    ],
)
def test_event_kinds(conn, event, hint):
    assert conn.parse_webhook(None, {**_form(), "event": event}) == [hint]


def test_nested_forms_and_unknown_events(conn):
    nested = {"event": "ONCRMCONTACTADD", "data": {"FIELDS": {"ID": "12"}}, "auth": {"application_token": TOKEN}}
    assert conn.parse_webhook(None, nested) == [ChangeHint("contacts", "12", kind="contact")]
    assert conn.parse_webhook(None, {**_form(), "event": "ONTASKADD"}) == []
    assert conn.parse_webhook(None, {**_form(), "event": "ONCRMDEALUSERFIELDADD"}) == []


def test_wrong_or_missing_token_is_rejected(conn):
    with pytest.raises(WebhookRejected) as missing:
        conn.parse_webhook(None, {k: v for k, v in _form().items() if "application_token" not in k})
    assert missing.value.status == 401
    with pytest.raises(WebhookRejected) as wrong:
        conn.parse_webhook(None, {**_form(), "auth[application_token]": "forged"})
    assert wrong.value.status == 403


def test_without_a_configured_token_nothing_is_accepted():
    from connectors.bitrix24.connector import Bitrix24Connector

    from .conftest import Events

    conn = Bitrix24Connector(make_source(), Events().context())
    with pytest.raises(WebhookRejected) as info:
        conn.parse_webhook(None, _form())
    assert info.value.status == 403
