"""Secret tools: list_secrets (names only; values are set by a person with `goldfish secrets set`)."""

from goldfish.secrets.models import SecretInfo
from goldfish.server.toolkit import ToolRegistry, ToolResult


class SecretsResult(ToolResult):
    """Secret names; never a value."""

    secrets: list[SecretInfo]
    total: int


def register(reg: ToolRegistry) -> None:
    """Register the secret tools."""

    @reg.tool(read_only=True, idempotent=True, title="List secrets")
    def list_secrets() -> SecretsResult:
        """Secret names stages use: where each is set, which stages use it. Never a value.

        A person sets one with `goldfish secrets set NAME`; a stage lists it under secrets:.
        """
        listing = reg.app.context.secret_service.listing()
        return SecretsResult(secrets=listing.secrets, total=listing.total)
