"""Secrets and access on a running service: forged webhooks refused, secrets never in a log, files private.

One ``segsync run`` with a Bitrix24 and an amoCRM source on the sandbox, every secret read from its own 0600 file.
Forged webhooks (wrong or missing application token / path secret, a stranger's account) are refused with 401 or
403 for both CRMs while a genuine event is accepted; the daemon's whole log is then scanned for every secret and
for any phone number or e-mail address. A secret file others can read is refused with a clear error.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from segsync.sandbox.testing import start_in_thread

from . import service, support


def test_forged_webhooks_are_refused_and_no_secret_reaches_the_log(tmp_path, store_url):
    handle = start_in_thread(seed=71, size="tiny", portals=1, accounts=1)
    sources, secrets = service.sources_yaml(handle)
    env = {**service.secret_env(tmp_path, secrets), "SEGSYNC_LOG_LEVEL": "debug"}  # every request logged
    daemon = service.Service(tmp_path, service.rules_yaml(sources), store_url, env=env)
    b24, amo = handle.info["bitrix24"], handle.info["amocrm"]
    statuses: dict[str, int] = {}
    try:
        daemon.start(pulls=2)
        hook = f"{daemon.url}/webhooks"
        b24_event = {"event": "ONCRMCONTACTUPDATE", "data[FIELDS][ID]": "1"}
        amo_event = {"contacts[update][0][id]": "1", "account[id]": str(amo["account_id"]),
                     "account[subdomain]": amo["subdomain"]}  # fmt: skip
        secret = secrets["REL_AMO_HOOK_SECRET"]
        attempts = {
            "b24 genuine": (
                f"{hook}/bitrix24/shop",
                {**b24_event, "auth[application_token]": b24["application_token"]},
            ),
            "b24 no token": (f"{hook}/bitrix24/shop", b24_event),
            "b24 forged token": (f"{hook}/bitrix24/shop", {**b24_event, "auth[application_token]": "f" * 32}),
            "amo genuine": (f"{hook}/amocrm/amo/{secret}", amo_event),
            "amo no secret": (f"{hook}/amocrm/amo", amo_event),
            "amo forged secret": (f"{hook}/amocrm/amo/not-the-secret", amo_event),
            "amo stranger account": (f"{hook}/amocrm/amo/{secret}", {**amo_event, "account[id]": "1"}),
            "amo stranger subdomain": (f"{hook}/amocrm/amo/{secret}", {**amo_event, "account[subdomain]": "evil"}),
        }
        for name, (url, form) in attempts.items():
            statuses[name] = httpx.post(url, data=form, timeout=10).status_code
    finally:
        code = daemon.stop()
        handle.stop()
    assert code == 0
    assert statuses.pop("b24 genuine") == 200 and statuses.pop("amo genuine") == 200
    assert all(status in (401, 403) for status in statuses.values()), statuses
    support.record("secrets.forged_webhooks_refused", f"{len(statuses)}/{len(statuses)}")

    text = daemon.log_text()
    everything = [*secrets.values(), b24["oauth"]["client_secret"], amo["client_secret"], amo["refresh_token"]]
    everything.append(b24["webhook_url"].rstrip("/").rsplit("/", 1)[1])  # the webhook's code alone
    found = support.leaks(text, everything)
    support.add("leaks.found", len(found))
    support.add("leaks.log_lines_scanned", text.count("\n"))
    assert text.count("\n") > 10 and found == [], found
    # the files holding secrets and tokens are the owner's only
    for path in (tmp_path / "secrets").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    if store_url.startswith("sqlite:///"):  # the OAuth tokens live in the store
        store = Path(store_url.removeprefix("sqlite:///"))
        assert stat.S_IMODE(store.stat().st_mode) & 0o077 == 0, oct(store.stat().st_mode)


def test_a_secret_file_others_can_read_is_refused_with_a_clear_error(tmp_path):
    secret = tmp_path / "webhook"
    secret.write_text("https://example.bitrix24.ru/rest/1/abcdefghijklmnop/")
    secret.chmod(0o644)
    rules = tmp_path / "segsync.yaml"
    rules.write_text("sources:\n  - name: shop\n    kind: bitrix24\n    webhook_url: ${REL_HOOK}\n")
    env = {**{k: v for k, v in os.environ.items() if k != "REL_HOOK"}, "REL_HOOK_FILE": str(secret)}
    result = subprocess.run(
        [sys.executable, "-m", "segsync.cli", "check-config", str(rules)], capture_output=True, text=True, env=env
    )
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "readable by other users" in out and "chmod 600" in out and str(secret) in out, out
    assert "abcdefghijklmnop" not in out and "Traceback" not in out
