"""20 % injected faults plus token expiry every ~100 requests → the same final state as a clean run.

For each CRM, two sandboxes of the same seed: one clean, one answering a fifth of all requests with a 5xx, a
spurious 429, an nginx HTML page or a hang longer than the client's timeout (5 % each), and expiring the OAuth
access token every 100 requests. The same rules run pull → compute → push (and further pushes while ops wait
for a retry) against each; the store rows and what managers see in the CRM (segsync's tasks, tags, fields) must
be identical. The amoCRM 403 block and Bitrix24's genuine QUERY_LIMIT_EXCEEDED (those the client caused, not
the injected ones) must stay at zero. Every figure is recorded for the suite summary.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from segsync.sandbox.faults import FaultOptions
from segsync.sandbox.testing import start_in_thread

from . import faults as f
from . import support

SEED = 41
SHARE = 0.05  # per fault kind: 4 kinds → 20 % of requests
EXPIRE_EVERY = support.pick(10, 50)  # requests per token: bounded runs make ~25-50 requests, full ~120-260


def fault_options() -> FaultOptions:
    return FaultOptions(
        error_5xx=SHARE, rate_429=SHARE, html=SHARE, timeout=SHARE, timeout_seconds=f.SERVER_HANG,
        token_expiry_every=EXPIRE_EVERY, seed=SEED,
    )  # fmt: skip


def start(kind: str, *, faulty: bool):
    size = "demo" if support.FULL else "tiny"
    if kind == "bitrix24":
        options = {"faults": fault_options().as_dict()} if faulty else None
        return start_in_thread(seed=SEED, size=size, portals=1, accounts=0, b24_options=options)
    # a JSON 429 says retry_after 300 s by default; 1 s keeps the suite fast and still honoured
    options = {"retry_after_seconds": 1, **({"faults": fault_options()} if faulty else {})}
    return start_in_thread(seed=SEED, size=size, portals=0, accounts=1, amo_options=options)


@pytest.mark.parametrize("kind", ["bitrix24", "amocrm"])
async def test_faulty_crm_converges_to_the_clean_state(engine, kind):
    clean, faulty = start(kind, faulty=False), start(kind, faulty=True)
    try:
        with f.captured_logs() as logs:
            # side by side, as the daemon runs its sources: the clean run hides in the faulty one's waits
            flows = [await f.install(engine, kind, clean, "clean"), await f.install(engine, kind, faulty, "faulty")]
            (clean_flow, clean_rounds), (faulty_flow, faulty_rounds) = await asyncio.gather(
                f.run_cycle(flows[0], kind, clean), f.run_cycle(flows[1], kind, faulty)
            )
        state = f.tenant_state(kind, faulty)
        clean_state = f.tenant_state(kind, clean)
        crm_clean, crm_faulty = f.crm_state(kind, clean), f.crm_state(kind, faulty)
        secrets = f.issued_secrets(kind, clean) + f.issued_secrets(kind, faulty)
    finally:
        clean.stop()
        faulty.stop()

    text = logs.getvalue()
    events = f.log_events(text)
    injected = state["faults_injected"]
    if kind == "bitrix24":
        counters = state["counters"]
        requests = sum(sum(by.values()) for by in counters["requests"].values())
        genuine_qle = counters["query_limit_exceeded"] - injected["429"]
        blocked = counters["blocked_403"]
        assert clean_state["counters"]["query_limit_exceeded"] == 0
    else:
        requests = sum(sum(by.values()) for by in state["requests"].values())
        genuine_qle = state["rate_limited_429"]
        blocked = state["blocked_403"]
        assert clean_state["blocked_403"] == 0
    prefix = f"faults.{kind}"
    support.record(f"{prefix}.requests", requests)
    support.record(f"{prefix}.injected", dict(injected))
    support.record(f"{prefix}.injected_share", round(sum(injected.values()) / max(requests, 1), 3))
    support.record(f"{prefix}.retries", events["retrying"])
    support.record(f"{prefix}.token_refreshes", f.token_refreshes(engine, faulty_flow.sid))
    support.record(f"{prefix}.push_rounds", {"clean": clean_rounds, "faulty": faulty_rounds})
    support.record(f"{prefix}.blocked_403", blocked)
    support.record(f"{prefix}.genuine_429_or_qle", genuine_qle)
    support.add("leaks.found", len(support.leaks(text, secrets)))
    support.add("leaks.log_lines_scanned", text.count("\n"))

    assert sum(injected.values()) >= 0.1 * requests, injected
    assert all(injected.values()) or not support.FULL, injected  # a few dozen requests may miss a kind
    assert f.token_refreshes(engine, faulty_flow.sid) >= 1, (
        "token expiry was injected, so the client must have refreshed"
    )
    # same final state: the store rows and what managers see
    assert faulty_flow.open_ops() == clean_flow.open_ops() and not clean_flow.open_ops()["parked"]
    assert (
        f.differences(f.store_state(engine, clean_flow.sid, "clean"), f.store_state(engine, faulty_flow.sid, "faulty"))
        == {}
    )
    assert crm_faulty["tasks"] and crm_faulty["labels"]
    crm_diff = f.differences(crm_clean, crm_faulty)
    assert not crm_diff, json.dumps(crm_diff, ensure_ascii=False, indent=1)
    assert blocked == 0 and genuine_qle == 0
    assert support.leaks(text, secrets) == []
