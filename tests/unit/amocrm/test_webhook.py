"""Unsigned form-encoded webhooks: secret path segment + account check, PHP bracket keys → hints."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from segsync.contract import ChangeHint
from segsync.errors import WebhookRejected

from .conftest import connector

FORM = FormData([
    ("leads[status][0][id]", "25399013"), ("leads[status][0][status_id]", "142"),
    ("leads[delete][0][id]", "12345678"), ("contacts[update][0][id]", "7"), ("contacts[update][0][type]", "contact"),
    ("contacts[add][0][id]", "9"), ("contacts[add][0][type]", "company"), ("tasks[add][0][id]", "55"),
    ("unsorted[add][0][uid]", "x"), ("account[subdomain]", "example"), ("account[id]", "28805383"),
])  # fmt: skip


def test_hints_from_form(store):
    amo = connector(store, webhook_secret="s3cret-path-segment", account_id=28805383)
    hints = amo.parse_webhook("s3cret-path-segment", FORM)
    assert hints == [
        ChangeHint("deals", "25399013", False), ChangeHint("deals", "12345678", True),
        ChangeHint("contacts", "7", False, "contact"), ChangeHint("companies", "9", False, "company"),
        ChangeHint("touches", "55", False),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("secret", "form", "status"),
    [(None, FORM, 401), ("wrong", FORM, 403),
     ("s3cret-path-segment", FormData([("leads[add][0][id]", "1"), ("account[subdomain]", "evil")]), 403),
     ("s3cret-path-segment", FormData([("leads[add][0][id]", "1"), ("account[id]", "1")]), 403),
     ("s3cret-path-segment", FormData([("leads[add][0][id]", "1")]), 403)],
)  # fmt: skip
def test_forgeries_are_rejected(store, secret, form, status):
    amo = connector(store, webhook_secret="s3cret-path-segment", account_id=28805383)
    with pytest.raises(WebhookRejected) as err:
        amo.parse_webhook(secret, form)
    assert err.value.status == status


def test_without_a_configured_secret_every_call_is_rejected(store):
    with pytest.raises(WebhookRejected):
        connector(store).parse_webhook("anything", FORM)
