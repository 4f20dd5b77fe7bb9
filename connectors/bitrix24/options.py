"""The `sources:` entry of a Bitrix24 portal."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from segsync.config.sources import SourceBase, Strict


class Bitrix24OAuth(Strict):
    portal_url: str = Field(pattern=r"^https?://", description="https://yourcompany.bitrix24.ru")
    client_id: str
    client_secret: SecretStr
    oauth_server: str = Field(default="https://oauth.bitrix.info", description="Token endpoint host.")
    refresh_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bootstrap only (use ${VAR}): the refresh token the install handed out, used once when the store holds "
            "no tokens yet. Refresh tokens rotate; after the first refresh the store keeps the current pair."
        ),
    )


class Bitrix24Limits(Strict):
    per_second: float = Field(default=2.0, gt=0, description="Leaky-bucket drain rate (Enterprise: 5).")
    burst: int = Field(default=50, gt=0, description="Requests allowed before blocking (Enterprise: 250).")
    operating_seconds: float = Field(default=480.0, gt=0, description="Per-method time budget per 10 minutes.")


class Bitrix24Source(SourceBase):
    kind: Literal["bitrix24"]
    webhook_url: SecretStr | None = Field(
        default=None, description="Inbound webhook URL https://portal/rest/<user>/<code>/ (a secret: use ${VAR})."
    )
    oauth: Bitrix24OAuth | None = Field(default=None, description="Local application instead of a webhook.")
    plan: Literal["standard", "enterprise"] = Field(default="standard", description="Sets the default limits.")
    limits: Bitrix24Limits | None = None
    tasks: Literal["task", "todo"] = Field(
        default="task", description="task: tasks.task.add bound to the CRM record; todo: crm.activity.todo.add."
    )
    application_token: SecretStr | None = Field(
        default=None, description="Outgoing-webhook application_token, checked on every event."
    )
    touches: bool = Field(default=True, description="Pull CRM activities (calls, meetings, e-mails) as touches.")
    phone_region: str = Field(
        default="RU", min_length=2, max_length=2, description="Region for phone numbers written without +country."
    )
    date_filter: Literal["iso", "local"] = Field(
        default="iso",
        description=(
            "How incremental pulls send the modified-since filter: iso = 2026-01-31T10:00:00+03:00 (documented), "
            "local = '2026-01-31 10:00:00' in the portal's time zone. segsync falls back to local by itself "
            "when a portal ignores the iso form."
        ),
    )
    parallel_chains: int = Field(
        default=8,
        ge=1,
        le=16,
        description=(
            "Batch chains run at once over disjoint ID ranges on a full export, so that the pull stays at the "
            "rate limit although one batch takes longer than 1/rate seconds. The limiter still bounds the total."
        ),
    )

    @model_validator(mode="after")
    def _one_auth(self) -> Bitrix24Source:
        if (self.webhook_url is None) == (self.oauth is None):
            raise ValueError("give exactly one of webhook_url or oauth")
        return self

    def effective_limits(self) -> Bitrix24Limits:
        if self.limits is not None:
            return self.limits
        if self.plan == "enterprise":
            return Bitrix24Limits(per_second=5.0, burst=250)
        return Bitrix24Limits()
