"""The systemd unit and the Dockerfile: verified by their own tools where installed, and read for what we promise."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "segsync.service"
DOCKERFILE = REPO / "Dockerfile"


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_declares_notify_watchdog_and_hardening():
    d = _directives(UNIT.read_text())
    assert d["Type"] == ["notify"] and d["WatchdogSec"] and d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["DynamicUser"] == ["yes"] and d["StateDirectory"] == ["segsync"] and d["UMask"] == ["0077"]
    assert d["ProtectSystem"] == ["strict"]
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "RestrictSUIDSGID", "ProtectKernelTunables"):
        assert d[key] == ["yes"], key
    assert "AF_UNIX" in d["RestrictAddressFamilies"][0]  # sd_notify needs it
    stop = int(d["TimeoutStopSec"][0].removesuffix("s"))
    assert stop > 30  # the daemon's own promise is 30 s


@pytest.fixture
def unit_for_here(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this virtualenv's segsync (verify checks the binary exists)."""
    segsync = Path(sys.executable).with_name("segsync")
    text = UNIT.read_text().replace("/opt/segsync/bin/segsync", str(segsync))
    target = tmp_path / "segsync.service"
    target.write_text(text)
    return target


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_is_clean(unit_for_here: Path):
    result = subprocess.run(["systemd-analyze", "verify", str(unit_for_here)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_security_exposure_is_low(unit_for_here: Path):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit_for_here)], capture_output=True, text=True
    )
    match = re.search(r"Overall exposure level for segsync\.service: ([\d.]+)", result.stdout)
    if match is None:
        pytest.skip(f"this systemd-analyze cannot assess units offline: {result.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 2.0


def test_dockerfile_is_multi_stage_non_root_with_volume_and_healthcheck():
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2 and "COPY --from=build" in text
    user = re.search(r"^USER (\S+)", text, re.M).group(1)
    assert user not in ("root", "0", "0:0")
    assert 'VOLUME ["/var/lib/segsync"]' in text
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.M)
    assert "SEGSYNC_LISTEN=0.0.0.0:8787" in text  # reachable through a published port


@pytest.mark.skipif(shutil.which("hadolint", path=str(Path(sys.executable).parent)) is None
                    and shutil.which("hadolint") is None, reason="hadolint not installed")  # fmt: skip
def test_hadolint_is_clean():
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    result = subprocess.run([exe, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
