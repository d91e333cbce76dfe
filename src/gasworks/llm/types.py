"""Moved to :mod:`gasworks.modeltypes` (a core module the SDK shares without importing llm).

This name stays so that code written against it keeps importing; new code imports
``gasworks.modeltypes``.
"""

from gasworks.modeltypes import (
    CallScope,
    ChatRequest,
    ChatResult,
    FinishReason,
    Message,
    Role,
    StreamChunk,
    Usage,
)

__all__ = [
    "CallScope",
    "ChatRequest",
    "ChatResult",
    "FinishReason",
    "Message",
    "Role",
    "StreamChunk",
    "Usage",
]
