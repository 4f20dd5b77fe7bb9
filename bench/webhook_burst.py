"""Figure for the daemon: a burst of 10,000 CRM webhooks must all be answered within 2 s.

Starts the CRM sandbox and `segsync run` as child processes (SQLite store in a temp dir, one Bitrix24
source), waits for the first pull, then fires Bitrix24 outgoing-webhook events (form-encoded, with
`auth[application_token]`) over N keep-alive connections on loopback with a minimal HTTP/1.1 client (so
that the client is not the bottleneck). Prints the wall time, requests/s, latency percentiles, the CPU
the daemon and the client used, the ratio to the 2 s budget, and how many pulls the burst caused.

    python bench/webhook_burst.py [--events 10000] [--connections 64] [--delete-share 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

BUDGET_SECONDS = 2.0


# --- the parent: start, burst, measure --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_first_pull(db: Path, within: float = 120.0) -> None:
    import sqlite3

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db) as conn:
                if conn.execute("SELECT count(*) FROM runs WHERE step = 'push' AND status != 'running'").fetchone()[0]:
                    return
        except sqlite3.Error:
            pass
        time.sleep(0.2)
    raise SystemExit("the daemon's first cycle did not finish")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (so that a busy shared machine does not hide the server's own cost)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _request(port: int, path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def burst(port: int, events: int, connections: int, delete_share: float, token: str) -> dict[str, Any]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(events):
        queue.put_nowait(i)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deletes_every = int(1 / delete_share) if delete_share > 0 else 0

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                event = "ONCRMDEALDELETE" if deletes_every and i % deletes_every == 0 else "ONCRMDEALUPDATE"
                deal = str(i % 500 + 1)
                body = urlencode({"event": event, "data[FIELDS][ID]": deal, "auth[application_token]": token})
                sent = time.perf_counter()
                writer.write(_request(port, "/webhooks/bitrix24/shop", body.encode()))
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - sent)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "elapsed": elapsed,
        "statuses": statuses,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "max_ms": 1000 * latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--delete-share", type=float, default=0.1)
    args = parser.parse_args()

    from segsync.sandbox.testing import start_subprocess

    sandbox = start_subprocess(size="tiny", accounts=0)
    b24 = sandbox.info["bitrix24"]
    token = b24["application_token"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = {"name": "shop", "kind": "bitrix24", "webhook_url": b24["webhook_url"], "application_token": token,
                  "schedule": {"pull": "1h"}}  # fmt: skip
        rules = {"timezone": "UTC", "sources": [source], "daemon": {"webhook_debounce": 1.0}}
        (folder / "rules.yaml").write_text(json.dumps(rules))
        port = _free_port()
        env = {**os.environ, "SEGSYNC_STORE_URL": f"sqlite:///{folder / 'segsync.db'}",
               "SEGSYNC_LISTEN": f"127.0.0.1:{port}", "SEGSYNC_LOG_LEVEL": "warning"}  # fmt: skip
        child = subprocess.Popen(
            [sys.executable, "-m", "segsync.cli", "run", "--config", str(folder / "rules.yaml")],
            env=env, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or child.poll() is not None:
                        raise SystemExit("the daemon did not start") from None
                    time.sleep(0.1)
            _wait_for_first_pull(folder / "segsync.db")
            cpu_before, client_before = _cpu_seconds(child.pid), time.process_time()
            result = asyncio.run(burst(port, args.events, args.connections, args.delete_share, token))
            server_cpu = _cpu_seconds(child.pid) - cpu_before
            client_cpu = time.process_time() - client_before
            time.sleep(2.5)  # debounce window + the pull it triggers
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(30)
            sandbox.stop()
        import sqlite3

        with sqlite3.connect(folder / "segsync.db") as db:
            pulls = db.execute("SELECT count(*) FROM runs WHERE step = 'pull'").fetchone()[0]

    ok = result["statuses"].get(200, 0)
    print(f"events                 {args.events} over {args.connections} connections ({args.delete_share:.0%} deletes)")
    print(f"answered 200           {ok} (others: { {k: v for k, v in result['statuses'].items() if k != 200} })")
    print(f"wall time              {result['elapsed']:.2f} s  ({args.events / result['elapsed']:,.0f} events/s)")
    print(f"latency p50/p99/max    {result['p50_ms']:.1f} / {result['p99_ms']:.1f} / {result['max_ms']:.1f} ms")
    print(f"server CPU             {server_cpu:.2f} s  ({1e6 * server_cpu / args.events:.0f} µs per event)")
    print(f"client CPU             {client_cpu:.2f} s  (the load generator, same machine)")
    print(f"machine load (1 min)   {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (the client shares them)")
    print(f"budget / wall time     {BUDGET_SECONDS / result['elapsed']:.2f}x  (≥ 1.00 meets the 2 s goal)")
    print(f"pulls caused           {pulls - 1} (after the start-up pull; debounced bursts cause 1)")


if __name__ == "__main__":
    main()
