"""Process settings: where the rules file and the store are, how to log.

Everything here comes from the environment (``SEGSYNC_*``) so that systemd units and containers
configure the process without touching the rules file an admin edits.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from segsync.secrets import lookup_secret


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEGSYNC_", extra="ignore")

    config: Path = Field(default=Path("config/segsync.yaml"), description="Path of the rules file.")
    store_url: str | None = Field(default=None, description="SQLAlchemy URL; overrides `store:` in the rules.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    listen: str | None = Field(
        default=None,
        pattern=r"^[\w.\-\[\]:]+:\d{1,5}$",
        description="host:port of the daemon's HTTP side; overrides `daemon.listen` (containers).",
    )
    lease_refresh: float = Field(
        default=10.0, gt=0, le=30, description="Seconds between lease refreshes (takeover delay of a dead replica)."
    )
    state_dir: Path | None = Field(
        default=None, description="Where the default SQLite store lives (systemd sets STATE_DIRECTORY)."
    )

    def default_state_dir(self) -> Path:
        """The folder for the default SQLite store: explicit setting, systemd's StateDirectory, or cwd."""
        if self.state_dir is not None:
            return self.state_dir
        systemd_dir = os.environ.get("STATE_DIRECTORY")
        if systemd_dir:
            return Path(systemd_dir.split(":")[0])
        return Path.cwd()


def load_settings() -> Settings:
    """Read settings; ``SEGSYNC_STORE_URL`` may also be given as ``SEGSYNC_STORE_URL_FILE``."""
    settings = Settings()
    if settings.store_url is None:
        settings.store_url = lookup_secret("SEGSYNC_STORE_URL")
    return settings
