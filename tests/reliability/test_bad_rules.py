"""Every broken rules file of ``tests/unit/config/broken`` against the shipped command and a running daemon.

The unit suite proves each file's located issue through the loader. Here the same 32 files go through what an
admin actually runs: ``segsync check-config FILE`` as a process (exit 2, ``file:line:col: key.path: problem``)
and a live ``segsync run`` whose rules file is overwritten with each of them in turn (SIGHUP): every reload is
refused with the located issue, the daemon keeps its last good rules and keeps working, and a good file is
then taken at once.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from segsync.sandbox.testing import start_in_thread

from . import service, support

BROKEN = sorted((Path(__file__).parents[1] / "unit" / "config" / "broken").glob("*.yaml"))
_EXPECT = re.compile(r"^# expect: (\d+):(\d+) (\S+) \| ?(.*)$")


def expectation(path: Path) -> tuple[int, int, str, str]:
    match = _EXPECT.match(path.read_text(encoding="utf-8").splitlines()[0])
    assert match, path
    line, col, key, message = match.groups()
    return int(line), int(col), "" if key == "-" else key, message.strip()


def located(text: str, path: Path | str, broken: Path) -> bool:
    """``text`` names ``path`` at the expected line:col, with the key path and the problem."""
    line, col, key, message = expectation(broken)
    prefix = f"{path}:{line}:{col}: " + (f"{key}: " if key else "")
    return any(prefix in ln and message in ln for ln in text.replace("\\n", "\n").splitlines())


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SEGSYNC_TEST_SURELY_UNSET"}
    return subprocess.run(
        [sys.executable, "-m", "segsync.cli", "check-config", str(path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_check_config_locates_every_broken_file():
    """Full: all 32 files (a process start each, ~1 s). Bounded: every fourth; the loader itself is proven on all
    32 by tests/unit/config/test_broken_files.py, and the daemon test below feeds all 32 to one process."""
    assert len(BROKEN) >= 30
    files = BROKEN if support.FULL else BROKEN[::4]
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(files, pool.map(check_config, files), strict=True))
    for path, result in results.items():
        assert result.returncode == 2, (path.name, result.returncode, result.stderr[-500:])
        out = result.stdout + result.stderr
        assert located(out, path, path), (path.name, out[-800:])
        assert "Traceback" not in out, path.name
    support.record("bad_rules.check_config_exit_2", len(results))


def test_a_running_daemon_keeps_its_rules_through_every_broken_file(tmp_path, store_url):
    handle = start_in_thread(seed=61, size="tiny", portals=1, accounts=0)
    sources, secrets = service.sources_yaml(handle, amo=None)
    good = service.rules_yaml(sources)
    daemon = service.Service(tmp_path, good, store_url, env=service.secret_env(tmp_path, secrets))
    try:
        daemon.start()
        refused = 0
        for broken in BROKEN:
            before = len(daemon.events("config_reload_failed"))
            daemon.config.write_text(broken.read_text(encoding="utf-8"))
            daemon.signal(signal.SIGHUP)
            failures = service.wait_until(
                lambda b=before: daemon.events("config_reload_failed")[b:], 30, f"{broken.name} refused"
            )
            issues = "\n".join(i for f in failures for i in f.get("issues", [f.get("error", "")]))
            assert located(issues, daemon.config, broken), (broken.name, issues)
            assert all(f["kept"] == "the last good rules" for f in failures)
            refused += 1
            ready = httpx.get(f"{daemon.url}/readyz", timeout=10).json()
            assert set(ready["sources"]) == {"shop"}, broken.name  # still the last good rules
        # still working: a good file with a second source is taken at once
        daemon.config.write_text(service.rules_yaml(sources + sources.replace("name: shop", "name: shop2")))
        daemon.signal(signal.SIGHUP)
        service.wait_until(lambda: daemon.events("config_reloaded"), 30, "the good file taken")
        service.wait_until(lambda: daemon.finished_pulls() >= 2, 60, "a pull of the new source")
        assert set(httpx.get(f"{daemon.url}/readyz", timeout=10).json()["sources"]) == {"shop", "shop2"}
    finally:
        code = daemon.stop()
        handle.stop()
    assert code == 0
    support.record("bad_rules.daemon_reloads_refused", refused)
    support.add("leaks.found", len(support.leaks(daemon.log_text(), secrets.values())))
    support.add("leaks.log_lines_scanned", daemon.log_text().count("\n"))
    assert support.leaks(daemon.log_text(), secrets.values()) == []
