"""Two real processes refresh the same rotating amoCRM token at once → exactly one refresh, both keep working.

The token endpoint is a tiny local HTTP server (127.0.0.1) that behaves as documented: every refresh
issues a new pair and revokes the refresh token it was given; a spent refresh token is answered 401
``Token has been revoked``. Its answer is slow, so both processes are inside ``refresh`` together.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from segsync.app import ensure_sources
from segsync.config.sources import SourceBase
from segsync.store import make_engine, upgrade
from segsync.tokens import DbTokenStore

WORKER = r"""
import asyncio, json, sys, time
from connectors.amocrm.connector import AmoCRMConnector
from connectors.amocrm.options import AmoCRMSource
from segsync.contract import ConnectorContext
from segsync.store import make_engine
from segsync.tokens import DbTokenStore

url, source_id, base, start = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
source = AmoCRMSource.model_validate({"name": "amo", "kind": "amocrm", "base_url": base, "rate_limit": 50,
    "oauth": {"client_id": "cid", "client_secret": "csecret-123456", "redirect_uri": "https://x.example/cb"}})
async def main():
    time.sleep(max(0.0, start - time.time()))
    async with AmoCRMConnector(source, ConnectorContext(tokens=DbTokenStore(make_engine(url), source_id))) as amo:
        users = [p async for p in amo.pull("users", None)]
        print(json.dumps({"account": amo.account.get("id"), "users": len(users[0].records)}))
asyncio.run(main())
"""


class TokenServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.refresh_token = "refresh-token-0"
        self.access_token = "access-token-0"
        self.refreshes = 0
        self.rejected = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: TokenServer

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: object, ctype: str = "application/hal+json") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(0.5)  # slow token endpoint: both processes are refreshing at the same time
        with self.server.lock:
            if body.get("grant_type") != "refresh_token" or body.get("refresh_token") != self.server.refresh_token:
                self.server.rejected += 1
                return self._send(
                    401,
                    {
                        "hint": "Token has been revoked",
                        "title": "Некорректный запрос",
                        "status": 401,
                        "detail": "bad token",
                    },
                    "application/problem+json",
                )
            self.server.refreshes += 1
            n = self.server.refreshes
            self.server.refresh_token = f"refresh-token-{n}"
            self.server.access_token = f"access-token-{n}"
        self._send(
            200,
            {
                "token_type": "Bearer",
                "expires_in": 86400,
                "access_token": self.server.access_token,
                "refresh_token": self.server.refresh_token,
            },
        )

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.server.access_token}":
            return self._send(401, {"title": "Unauthorized", "status": 401}, "application/problem+json")
        if self.path.startswith("/api/v4/account"):
            return self._send(
                200, {"id": 28805383, "subdomain": "example", "currency": "RUB", "is_api_filter_enabled": True}
            )
        if self.path.startswith("/api/v4/users"):
            return self._send(200, {"_embedded": {"users": [{"id": 1, "name": "A"}]}, "_links": {}})
        return self._send(404, {"status": 404})


@pytest.fixture
def token_server():
    server = TokenServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("database", ["selected", "postgresql"])
def test_two_processes_refresh_once_and_both_keep_working(request, token_server, database, tmp_path: Path):
    url = request.getfixturevalue("store_url" if database == "selected" else "postgres_url")
    engine = make_engine(url)
    upgrade(engine)
    source_id = ensure_sources(engine, [SourceBase(name="amo", kind="amocrm")])["amo"]
    expired = time.time() - 10
    import asyncio

    asyncio.run(
        DbTokenStore(engine, source_id).save(
            {
                "access_token": "access-token-0",
                "refresh_token": "refresh-token-0",
                "expires_in": 86400,
                "expires_at": expired,
                "obtained_at": expired - 86400,
            }
        )
    )
    start = time.time() + 3.0  # both start their first request at the same instant
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(source_id), token_server.base_url, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert json.loads(out.strip().splitlines()[-1]) == {"account": 28805383, "users": 1}
    assert token_server.refreshes == 1 and token_server.rejected == 0
    stored = asyncio.run(DbTokenStore(engine, source_id).load())
    assert stored["refresh_token"] == "refresh-token-1"
    engine.dispose()
