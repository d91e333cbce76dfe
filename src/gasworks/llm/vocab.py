"""The guardrails' small vocabularies (budget periods, usage groupings), in a module of their
own so that the CLI can build its options (``gasworks --help``) without importing the
server stack."""

from __future__ import annotations

from enum import StrEnum


class Period(StrEnum):
    DAY = "day"
    MONTH = "month"

    @property
    def adjective(self) -> str:
        """``daily`` / ``monthly``, for messages."""
        return "daily" if self is Period.DAY else "monthly"


class GroupBy(StrEnum):
    DAY = "day"
    MODEL = "model"
    WORKFLOW = "workflow"
    API_KEY = "api_key"
    PROVIDER = "provider"
    STATUS = "status"
    KIND = "kind"
    PROMPT_VERSION = "prompt_version"
