"""The harness's own parts: kills land on the exact request, and the comparison sees what it must catch."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from segsync.sandbox.testing import SandboxHandle

from .harness import crm_snapshot, duplicate_tasks, lost_changes
from .killswitch import start_sandbox

#: A client that creates amoCRM tasks k1, k2, ... one request each and prints each number once answered.
CLIENT = """
import sys, time, httpx
base, token, contact = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(1, 6):
    due = int(time.time()) + 86400
    body = [{"text": f"k{i}", "entity_type": "contacts", "entity_id": contact, "complete_till": due}]
    httpx.post(base + "/api/v4/tasks", json=body, headers={"Authorization": "Bearer " + token}).raise_for_status()
    print(i, flush=True)
    time.sleep(0.2)
"""


def api(handle: SandboxHandle, method: str, path: str, body: Any = None) -> Any:
    amo = handle.info["amocrm"]
    r = httpx.request(method, amo["base_url"] + path, json=body,
                      headers={"Authorization": "Bearer " + amo["long_lived_token"]})  # fmt: skip
    r.raise_for_status()
    time.sleep(0.2)  # amoCRM's 7 requests/s
    return r.json()


def a_contact(handle: SandboxHandle) -> int:
    return int(api(handle, "GET", "/api/v4/contacts?limit=1")["_embedded"]["contacts"][0]["id"])


@pytest.mark.parametrize(("phase", "created"), [("after", ["k1", "k2", "k3"]), ("before", ["k1", "k2"])])
def test_the_nth_request_kills_the_process_group_before_or_after_the_crm_applies_it(phase, created):
    handle, switch = start_sandbox(seed=3, customers=20)
    try:
        amo = handle.info["amocrm"]
        contact = a_contact(handle)
        proc = subprocess.Popen([sys.executable, "-c", CLIENT, amo["base_url"], amo["long_lived_token"], str(contact)],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        switch.arm(proc.pid, 3, phase)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL and switch.fired
        assert out.split() == ["1", "2"]  # the third answer never arrived
        texts = [t["text"] for t in handle.admin("GET", "/amo/account/_admin/tasks")["tasks"]]
        assert [t for t in texts if t.startswith("k") and t[1:].isdigit()] == created
        assert switch.count == 3
    finally:
        handle.stop()


def test_the_comparison_counts_a_duplicate_task_and_a_lost_tag():
    handle, _switch = start_sandbox(seed=3, customers=20)
    world = SimpleNamespace(handle=handle)  # crm_snapshot reads the sandbox only
    try:
        contact = a_contact(handle)
        task = [{"text": "Позвонить [segsync:reactivation:0123456789ab]", "entity_type": "contacts",
                 "entity_id": contact, "complete_till": int(time.time()) + 86400}]  # fmt: skip
        api(handle, "POST", "/api/v4/tasks", task)
        edit = {"entity_type": "contacts", "id": contact}
        handle.admin("POST", "/amo/account/_admin/edit", {**edit, "fields": {"tags_to_add": [{"name": "seg:x"}]}})
        reference = crm_snapshot(world)  # type: ignore[arg-type]
        assert duplicate_tasks(reference, reference) == 0 and lost_changes(reference, reference) == 0
        api(handle, "POST", "/api/v4/tasks", task)  # the same op sent twice
        handle.admin("POST", "/amo/account/_admin/edit", {**edit, "fields": {"tags_to_delete": [{"name": "seg:x"}]}})
        after = crm_snapshot(world)  # type: ignore[arg-type]
        assert duplicate_tasks(reference, after) == 2  # one task too many, and one marker used twice
        assert lost_changes(reference, after) == 1
    finally:
        handle.stop()
