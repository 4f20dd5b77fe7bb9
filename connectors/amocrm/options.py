"""The `sources:` entry of an amoCRM / Kommo account."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from segsync.config.sources import SourceBase, Strict


class AmoCRMOAuth(Strict):
    client_id: str = Field(description="Integration ID.")
    client_secret: SecretStr = Field(description="Integration secret key (use ${VAR}).")
    redirect_uri: str = Field(pattern=r"^https?://", description="Exactly as registered in the integration.")


class AmoCRMTaskTypes(Strict):
    """amoCRM task type ids for segsync's task kinds (1 = follow-up/call, 2 = meeting; custom ids allowed)."""

    call: int = 1
    meeting: int = 2
    todo: int = 1


class AmoCRMSource(SourceBase):
    kind: Literal["amocrm"]
    base_url: str = Field(
        pattern=r"^https?://", description="https://<subdomain>.amocrm.ru or https://<subdomain>.kommo.com"
    )
    long_lived_token: SecretStr | None = Field(default=None, description="Private-integration long-lived token.")
    oauth: AmoCRMOAuth | None = Field(default=None, description="OAuth 2 with rotating refresh tokens.")
    rate_limit: float = Field(default=7.0, gt=0, le=50, description="Requests per second for this account.")
    concurrency: int = Field(
        default=4, ge=1, le=16, description="Parallel page requests in full pulls (always within rate_limit)."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="Random path segment of the webhook URL given to amoCRM."
    )
    account_id: int | None = Field(
        default=None, description="Expected account id (checked on webhooks; learned from the API when unset)."
    )
    subdomain_override: str | None = Field(
        default=None, alias="subdomain", description="Account subdomain checked on webhooks (default: from base_url)."
    )
    phone_region: str = Field(
        default="RU", pattern=r"^[A-Z]{2}$", description="Region for phone numbers written without a country code."
    )
    touches: bool = Field(default=True, description="Pull tasks as customer touches (last call/meeting).")
    task_types: AmoCRMTaskTypes = AmoCRMTaskTypes()
    refresh_before: int = Field(
        default=3600, ge=60, description="Refresh an OAuth access token this many seconds before it expires."
    )

    @field_validator("base_url")
    @classmethod
    def _account_url(cls, value: str) -> str:
        parts = urlsplit(value)
        host = parts.hostname or ""
        if host.startswith("www."):
            raise ValueError("use your account's own address (https://<subdomain>.amocrm.ru), not www")
        return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")

    @model_validator(mode="after")
    def _one_auth(self) -> AmoCRMSource:
        if (self.long_lived_token is None) == (self.oauth is None):
            raise ValueError("give exactly one of long_lived_token or oauth")
        return self

    @property
    def subdomain(self) -> str:
        """The account's subdomain (``example`` of ``example.amocrm.ru``); checked on webhooks."""
        return self.subdomain_override or (urlsplit(self.base_url).hostname or "").split(".")[0]
