"""The process settings every segsync process starts with (segsync.runtime)."""

from __future__ import annotations

import gc
import platform
import subprocess
import sys

import pytest

from segsync import cli
from segsync.runtime import tune_process


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_heap_settings_apply_on_glibc():
    code = "from segsync.runtime import tune_malloc; print(tune_malloc())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_the_command_line_applies_them(monkeypatch):
    applied = []
    monkeypatch.setattr(cli, "tune_process", lambda: applied.append(True))
    monkeypatch.setattr(cli, "app", lambda: applied.append("app"))
    cli.main()
    assert applied == [True, "app"]  # before any command runs


def test_collector_thresholds():
    before = gc.get_threshold()
    try:
        tune_process()
        assert gc.get_threshold() == (50_000, 20, 100)
    finally:
        gc.set_threshold(*before)
