"""Auth, errors and writes as documented (shared/api/bitrix24.md §1, §2.6, §6): webhook and OAuth calls,
token expiry and rotation, 302 for a moved portal, documented error bodies, user fields, updates,
tasks, to-dos and outgoing-webhook events."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar
from urllib.parse import parse_qs

import httpx
import pytest


@pytest.fixture
def sb(sandbox_factory):
    return sandbox_factory(b24_options={"real_delays": False})


def b24(sb):
    return sb.info["bitrix24"]


def test_oauth_call_with_auth_param_in_query_and_body(sb):
    o = b24(sb)["oauth"]
    r = httpx.get(o["client_endpoint"] + "crm.deal.get", params={"id": 1, "auth": o["access_token"]})
    assert r.status_code == 200 and r.json()["result"]["ID"] == "1"
    r = httpx.post(o["client_endpoint"] + "crm.deal.get.json", json={"id": 1, "auth": o["access_token"]})
    assert r.status_code == 200


def test_wrong_credentials(sb):
    o = b24(sb)["oauth"]
    r = httpx.post(o["client_endpoint"] + "crm.deal.get", json={"id": 1, "auth": "nope"})
    assert r.status_code == 401 and r.json() == {
        "error": "NO_AUTH_FOUND",
        "error_description": "Wrong authorization data",
    }
    r = httpx.post(o["portal_url"] + "/rest/1/wrongcode/crm.deal.get", json={"id": 1})
    assert r.status_code == 401 and r.json()["error"] == "NO_AUTH_FOUND"


def test_token_expiry_then_refresh_rotates_and_old_refresh_token_is_rejected(sb):
    o = b24(sb)["oauth"]
    sb.admin("POST", "/b24/portal/_admin/expire-tokens")
    r = httpx.post(o["client_endpoint"] + "crm.deal.get", json={"id": 1, "auth": o["access_token"]})
    assert r.status_code == 401
    assert r.json() == {"error": "expired_token", "error_description": "The access token provided has expired."}
    q = {"grant_type": "refresh_token", "client_id": o["client_id"], "client_secret": o["client_secret"],
         "refresh_token": o["refresh_token"]}  # fmt: skip
    fresh = httpx.get(o["token_url"], params=q).json()
    assert fresh["expires_in"] == 3600 and fresh["domain"] == "oauth.bitrix.info"
    assert fresh["client_endpoint"] == o["client_endpoint"] and fresh["refresh_token"] != o["refresh_token"]
    assert {"access_token", "expires", "scope", "server_endpoint", "status", "member_id", "user_id"} <= set(fresh)
    r = httpx.post(o["client_endpoint"] + "crm.deal.get", json={"id": 1, "auth": fresh["access_token"]})
    assert r.status_code == 200
    again = httpx.get(o["token_url"], params=q)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    bad = httpx.get(o["token_url"], params={**q, "client_secret": "x"})
    assert bad.json()["error"] == "invalid_client"


def test_authorization_code_flow(sb):
    o = b24(sb)["oauth"]
    r = httpx.get(o["portal_url"] + "/oauth/authorize/", params={"client_id": o["client_id"], "state": "s1"})
    assert r.status_code == 302
    loc = httpx.URL(r.headers["location"])
    assert loc.params["state"] == "s1" and loc.params["member_id"]
    q = {"grant_type": "authorization_code", "client_id": o["client_id"], "client_secret": o["client_secret"],
         "code": loc.params["code"]}  # fmt: skip
    assert "access_token" in httpx.get(o["token_url"], params=q).json()
    assert httpx.get(o["token_url"], params=q).json()["error"] == "invalid_grant"  # a code works once


def test_moved_portal_answers_302_and_post_must_be_repeated(sb):
    hook = b24(sb)["webhook_url"]
    moved = sb.admin("POST", "/_admin/b24/portal/move", {"to": "portal-new"})
    r = httpx.post(hook + "crm.deal.get", json={"id": 1}, follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == hook.replace("/b24/portal/", "/b24/portal-new/") + "crm.deal.get"
    r = httpx.post(r.headers["location"], json={"id": 1})
    assert r.status_code == 200 and moved["info"]["member_id"] == b24(sb)["member_id"]


def test_unknown_method_and_missing_scope(sb):
    hook = b24(sb)["webhook_url"]
    r = httpx.post(hook + "crm.nothing.here", json={})
    assert r.status_code == 404 and r.json() == {
        "error": "ERROR_METHOD_NOT_FOUND",
        "error_description": "Method not found!",
    }
    limited = sb.admin("POST", "/b24/portal/_admin/webhooks", {"user_id": 1, "scopes": ["crm"]})
    r = httpx.post(limited["webhook_url"] + "tasks.task.list", json={})
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"


def test_rest_on_a_free_plan_is_denied(sb):
    sb.admin("POST", "/b24/portal/_admin/options", {"commercial_plan": False})
    r = httpx.post(b24(sb)["webhook_url"] + "crm.deal.get", json={"id": 1})
    assert r.status_code == 403 and r.json()["error"] == "ACCESS_DENIED"


def test_userfield_enumeration_and_contact_update_persist(sb):
    hook = b24(sb)["webhook_url"]
    fields = {"FIELD_NAME": "SEGMENT", "USER_TYPE_ID": "enumeration", "LABEL": "Сегмент",
              "LIST": [{"VALUE": "A", "XML_ID": "seg_a"}, {"VALUE": "B", "XML_ID": "seg_b"}]}  # fmt: skip
    r = httpx.post(hook + "crm.contact.userfield.add", json={"fields": fields})
    assert r.status_code == 200 and isinstance(r.json()["result"], int)
    dup = httpx.post(hook + "crm.contact.userfield.add", json={"fields": {**fields, "FIELD_NAME": "OTHER",
                     "LIST": [{"VALUE": "A", "XML_ID": "x"}, {"VALUE": "B", "XML_ID": "x"}]}})  # fmt: skip
    assert dup.status_code == 400 and dup.json()["error"] == "" and "XML_ID=x" in dup.json()["error_description"]
    defs = httpx.post(hook + "crm.contact.userfield.list", json={}).json()["result"]
    uf = next(d for d in defs if d["FIELD_NAME"] == "UF_CRM_SEGMENT")
    item_b = next(i for i in uf["LIST"] if i["XML_ID"] == "seg_b")
    before = httpx.post(hook + "crm.contact.get", json={"id": 5}).json()["result"]["DATE_MODIFY"]
    r = httpx.post(hook + "crm.contact.update", json={"id": 5, "fields": {"UF_CRM_SEGMENT": item_b["ID"]},
                                                      "params": {"REGISTER_SONET_EVENT": "N"}})  # fmt: skip
    assert r.status_code == 200 and r.json()["result"] is True
    got = httpx.post(hook + "crm.contact.get", json={"id": 5}).json()["result"]
    assert got["UF_CRM_SEGMENT"] == item_b["ID"] and got["DATE_MODIFY"] >= before
    listed = httpx.post(hook + "crm.contact.list", json={"filter": {"UF_CRM_SEGMENT": item_b["ID"]}, "select": ["ID"]})
    assert [x["ID"] for x in listed.json()["result"]] == ["5"]
    written = sb.admin("GET", "/b24/portal/_admin/fields?entity=contact")
    assert written["fields"] == {"5": {"UF_CRM_SEGMENT": item_b["ID"]}}
    r = httpx.post(hook + "crm.contact.update", json={"id": 999999, "fields": {"NAME": "x"}})
    assert r.status_code == 400 and r.json() == {"error": "", "error_description": "Contact is not found"}


def test_userfield_add_needs_an_admin(sb):
    limited = sb.admin("POST", "/b24/portal/_admin/webhooks", {"user_id": 2})
    r = httpx.post(limited["webhook_url"] + "crm.company.userfield.add",
                   json={"fields": {"FIELD_NAME": "X", "USER_TYPE_ID": "string"}})  # fmt: skip
    assert r.status_code == 400 and r.json()["error_description"] == "Access denied"


def test_tasks_add_list_by_binding_and_complete(sb):
    hook = b24(sb)["webhook_url"]
    active = next(u for u in httpx.post(hook + "user.get", json={}).json()["result"] if u["ACTIVE"])
    fields = {"TITLE": "Позвонить клиенту", "RESPONSIBLE_ID": active["ID"], "DEADLINE": "2030-01-10T18:00:00+03:00",
              "UF_CRM_TASK": ["C_5"], "DESCRIPTION": "segsync:abc"}  # fmt: skip
    r = httpx.post(hook + "tasks.task.add", json={"fields": fields})
    task = r.json()["result"]["task"]
    assert r.status_code == 200 and isinstance(task["id"], str) and task["status"] == "2"
    sel = ["ID", "TITLE", "STATUS", "RESPONSIBLE_ID", "DEADLINE", "UF_CRM_TASK"]
    found = httpx.post(
        hook + "tasks.task.list", json={"filter": {"UF_CRM_TASK": ["C_5"], "!REAL_STATUS": 5}, "select": sel}
    ).json()
    assert [t["id"] for t in found["result"]["tasks"]] == [task["id"]] and found["total"] == 1
    assert found["result"]["tasks"][0]["ufCrmTask"] == ["C_5"]
    done = httpx.post(hook + "tasks.task.complete", json={"taskId": int(task["id"])}).json()
    assert done["result"]["task"]["status"] == "5"
    open_ = httpx.post(
        hook + "tasks.task.list", json={"filter": {"UF_CRM_TASK": ["C_5"], "!REAL_STATUS": 5}, "select": sel}
    ).json()
    assert open_["result"]["tasks"] == [] and open_["total"] == 0
    assert sb.admin("GET", "/b24/portal/_admin/tasks")["tasks"][0]["status"] == "5"
    bad = httpx.post(hook + "tasks.task.add", json={"fields": {"RESPONSIBLE_ID": 1}})
    assert bad.status_code == 400 and bad.json() == {
        "error": "ERROR_CORE",
        "error_description": "Task title not specified<br>",
    }
    inactive = next(u for u in httpx.post(hook + "user.get", json={}).json()["result"] if not u["ACTIVE"])
    bad = httpx.post(hook + "tasks.task.add", json={"fields": {"TITLE": "x", "RESPONSIBLE_ID": inactive["ID"]}})
    assert bad.json()["error_description"] == 'User specified in the "Assignee" field not found<br>'


def test_todo_add_then_activity_list(sb):
    hook = b24(sb)["webhook_url"]
    todo = {"ownerTypeId": 3, "ownerId": 5, "deadline": "2030-02-03T15:00:00", "title": "Напомнить", "responsibleId": 1}
    r = httpx.post(hook + "crm.activity.todo.add", json=todo)
    todo_id = r.json()["result"]["id"]
    flt = {"OWNER_TYPE_ID": 3, "OWNER_ID": 5, "PROVIDER_ID": "CRM_TODO", "COMPLETED": "N"}
    found = httpx.post(hook + "crm.activity.list", json={"filter": flt, "select": ["ID", "SUBJECT"]}).json()
    assert [(a["ID"], a["SUBJECT"]) for a in found["result"]] == [(str(todo_id), "Напомнить")]
    r = httpx.post(
        hook + "crm.activity.todo.add", json={"ownerTypeId": 3, "ownerId": 999999, "deadline": "2030-02-03T15:00:00"}
    )
    assert r.status_code == 400 and r.json()["error"] == "OWNER_NOT_FOUND"


class _Sink(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        _Sink.received.append({"ctype": self.headers["Content-Type"], **{k: v[0] for k, v in parse_qs(body).items()}})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_admin_edit_and_delete_post_outgoing_webhook_events(sb):
    server = HTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _Sink.received.clear()
        sb.admin("POST", "/b24/portal/_admin/webhook", {"url": f"http://127.0.0.1:{server.server_port}/hook"})
        sb.admin("POST", "/b24/portal/_admin/entities/deal/3", {"STAGE_ID": "WON", "OPPORTUNITY": "777.00"})
        sb.admin("DELETE", "/b24/portal/_admin/entities/contact/4")
        for _ in range(100):
            if len(_Sink.received) >= 2:
                break
            threading.Event().wait(0.05)
        events = {e["event"]: e for e in _Sink.received}
        upd = events["ONCRMDEALUPDATE"]
        assert upd["ctype"].startswith("application/x-www-form-urlencoded")
        assert upd["data[FIELDS][ID]"] == "3" and upd["auth[application_token]"] == b24(sb)["application_token"]
        assert events["ONCRMCONTACTDELETE"]["data[FIELDS][ID]"] == "4"
        hook = b24(sb)["webhook_url"]
        assert httpx.post(hook + "crm.deal.get", json={"id": 3}).json()["result"]["OPPORTUNITY"] == "777.00"
        assert (
            httpx.post(hook + "crm.contact.get", json={"id": 4}).json()
            == {"error": "", "error_description": "Not found"} | {}
        )
    finally:
        server.shutdown()


def test_admin_api_needs_the_token(sb):
    r = httpx.get(sb.url + "/b24/portal/_admin/state")
    assert r.status_code == 401
    r = httpx.get(sb.url + "/_admin/state", headers={"X-Sandbox-Admin": "wrong"})
    assert r.status_code == 401


def test_injected_faults_are_counted(sb):
    sb.admin("POST", "/b24/portal/_admin/faults", {"html": 1.0})
    r = httpx.post(b24(sb)["webhook_url"] + "crm.deal.get", json={"id": 1})
    assert r.status_code in (502, 503) and r.headers["content-type"].startswith("text/html")
    assert sb.admin("GET", "/b24/portal/_admin/state")["faults_injected"]["html"] == 1
