"""What ``list_secrets`` reports (names and where each is set; never a value)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SecretInfo(BaseModel):
    """One secret name; never its value."""

    name: str
    set_in: list[str] = Field(
        description="project secrets file, server environment, Secret Manager; empty = not set"
    )
    used_by: list[str] = Field(description="'workspace:stage' of mounted workspaces, or every stage")


class SecretListing(BaseModel):
    """Every secret that is stored or used."""

    secrets: list[SecretInfo]
    total: int
