"""The composed sandbox: both CRMs behind one server and one admin token."""

from __future__ import annotations

from segsync.sandbox.testing import start_in_thread


def test_both_crms_share_the_server_and_its_admin_token():
    handle = start_in_thread(size="tiny", accounts=1)
    try:
        info = handle.info
        assert info["bitrix24"]["webhook_url"].startswith(info["url"])
        assert info["amocrm"]["base_url"].startswith(info["url"])
        assert handle.admin("GET", "/amo/account/_admin/state")["entities"]
        assert handle.admin("GET", "/b24/portal/_admin/state")["entities"]
    finally:
        handle.stop()
