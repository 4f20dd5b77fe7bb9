"""`segsync demo` as a newcomer runs it: a subprocess on a temp dir, with nothing configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _run_demo(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGSYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "segsync.cli", "demo", "--dir", str(folder), "--size", "tiny"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=folder.parent,
    )


def test_demo_runs_the_whole_flow_and_is_repeatable(tmp_path):
    folder = tmp_path / "demo"
    first = _run_demo(folder)
    assert first.returncode == 0, first.stderr[-3000:]
    report = folder / "report.html"
    assert report.exists() and report.stat().st_size > 10_000
    summary = json.loads((folder / "summary.json").read_text())
    for source in summary["sources"]:
        assert source["customers"] > 0 and source["labels_written"] > 0
        created = sum(source["tasks_by_manager"].values())
        assert created > 0 and source["tasks_in_crm"] == created  # exactly what the ledger says, no duplicate
        assert source["second_push_writes"] == 0
    assert "report:" in first.stdout and "tasks created per manager" in first.stdout
    assert oct((folder / "segsync.db").stat().st_mode & 0o777) == "0o600"
    assert oct((folder / "secrets" / "segsync_demo_amo_token").stat().st_mode & 0o777) == "0o600"
    secrets = [p.read_text() for p in (folder / "secrets").iterdir()]
    assert not any(secret in first.stdout + first.stderr for secret in secrets)

    second = _run_demo(folder)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads((folder / "summary.json").read_text())
    strip = lambda s: [{k: v for k, v in src.items()} for src in s["sources"]]  # noqa: E731
    assert strip(again) == strip(summary)
