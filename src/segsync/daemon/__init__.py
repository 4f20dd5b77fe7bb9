"""The long-running service: scheduler, workers, webhooks, health and metrics (``segsync run``)."""

from segsync.daemon.service import Daemon, run_daemon

__all__ = ["Daemon", "run_daemon"]
