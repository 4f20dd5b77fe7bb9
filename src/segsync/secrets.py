"""Secrets come from the environment (``X``) or from a file named by ``X_FILE``.

The file form is what systemd credentials, Docker secrets and Kubernetes mount; we refuse files
that other users can read, because a leaked webhook code is full CRM access.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from segsync.errors import SegsyncError


class SecretError(SegsyncError):
    """A secret was asked for and is missing or unsafely stored."""


def lookup_secret(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """Return ``$name`` or the content of ``$name_FILE`` (stripped), or None when neither is set."""
    env = os.environ if env is None else env
    if name in env:
        return env[name]
    file_name = env.get(f"{name}_FILE")
    if not file_name:
        return None
    return read_secret_file(Path(file_name), label=f"{name}_FILE")


def read_secret_file(path: Path, *, label: str | None = None) -> str:
    """Read a secret file, refusing group/world-readable ones."""
    label = label or str(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SecretError(f"{label}: cannot read {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"{label}: {path} is readable by other users (mode {stat.filemode(mode)}); chmod 600 it")
    return path.read_text(encoding="utf-8").strip()


def write_private_file(path: Path, data: str) -> None:
    """Write ``data`` atomically to a file only the owner can read (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
