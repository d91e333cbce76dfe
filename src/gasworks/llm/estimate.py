"""Cheap token estimates for when a provider reports no usage (marked ``estimated``).

Characters divided by the model's ``fallback_token_ratio`` plus a small per-message overhead:
a deliberate over- rather than under-estimate, with no tokenizer download on the hot path.
"""

from __future__ import annotations

import math

from gasworks.llm.types import Message

#: role markers and separators a chat template adds per message
MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str, ratio: float) -> int:
    if not text:
        return 0
    return max(1, math.ceil(len(text) / ratio))


def estimate_prompt_tokens(messages: list[Message], ratio: float) -> int:
    return sum(estimate_tokens(m.text(), ratio) + MESSAGE_OVERHEAD for m in messages) + 2
