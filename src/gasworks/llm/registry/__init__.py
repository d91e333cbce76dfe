"""The model registry: which models exist, what they cost, what they can do."""

from gasworks.llm.registry.registry import (
    PROFILE_PREFIXES,
    ModelRegistry,
    build_registry,
    catalog_entries,
)
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modelcard import (
    Capabilities,
    ModelEntry,
    ModelKind,
    PriceOverride,
    ProviderName,
)

__all__ = [
    "PROFILE_PREFIXES",
    "Capabilities",
    "ModelEntry",
    "ModelKind",
    "ModelRegistry",
    "PriceOverride",
    "ProviderName",
    "ResolvedModel",
    "build_registry",
    "catalog_entries",
]
