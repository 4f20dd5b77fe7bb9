"""The systemd notification protocol (sd_notify(3)): READY, WATCHDOG, STATUS, STOPPING.

A datagram to the socket named by ``$NOTIFY_SOCKET``; no-ops when systemd did not set it, so the
same code runs under Docker or a terminal. Twenty lines are simpler than a dependency here.
"""

from __future__ import annotations

import os
import socket

from segsync.logs import get_logger

log = get_logger("segsync.daemon.notify")


def notify(*fields: str) -> bool:
    """Send ``KEY=value`` fields to systemd; return whether a notification socket was there."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
    except OSError as exc:
        log.warning("sd_notify_failed", error=str(exc))
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``$WATCHDOG_USEC``), or None when no watchdog is armed."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        return max(int(usec) / 1_000_000 / 2, 0.5)
    except ValueError:
        return None
