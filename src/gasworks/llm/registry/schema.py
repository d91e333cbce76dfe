"""Moved to :mod:`gasworks.modelcard` (a core module the SDK shares without importing llm).

This name stays so that code written against it keeps importing; new code imports
``gasworks.modelcard``.
"""

from gasworks.modelcard import (
    FIELD_BY_ALIAS,
    MUTABLE_FIELDS,
    Capabilities,
    EmbeddingSpec,
    ModelEntry,
    ModelKind,
    Price,
    PriceOverride,
    ProviderName,
)

__all__ = [
    "FIELD_BY_ALIAS",
    "MUTABLE_FIELDS",
    "Capabilities",
    "EmbeddingSpec",
    "ModelEntry",
    "ModelKind",
    "Price",
    "PriceOverride",
    "ProviderName",
]
