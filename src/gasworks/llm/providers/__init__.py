"""Provider adapters, one module per vendor wire format, built lazily from settings."""

from __future__ import annotations

from gasworks.llm.providers.base import Provider, check_capabilities, classify_status
from gasworks.llm.providers.factory import ProviderSet

__all__ = ["Provider", "ProviderSet", "check_capabilities", "classify_status"]
