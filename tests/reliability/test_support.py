from __future__ import annotations

from . import support


def test_leaks_finds_secrets_phones_and_emails_but_not_ids() -> None:
    text = '{"event": "pulled", "source": "b24", "id": "12345", "code": "abcdef123456"}'
    assert support.leaks(text, ["abcdef123456"]) == ["secret …3456"]
    assert support.leaks("call +7 (912) 345-67-89 now", []) and support.leaks("to ivan@example.ru", [])
    assert support.leaks('{"customer": "8123", "rows": 79123456789}', []) == ["phone 7912…"]
    assert support.leaks('{"customer_id": "481516", "run": 42}', ["short"]) == []


def test_a_hex_request_id_is_not_a_phone_number():
    assert support.leaks('{"request_id": "82431234567e4f0a9b1c2d3e4f5a6b7c"}', []) == []
    assert support.leaks('{"phone": "82431234567"}', []) == ["phone 8243…"]
