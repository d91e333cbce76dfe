"""Token estimates for when a provider reports no usage (marked ``estimated``).

With the model's ``tokenizer`` when gasworks ships it (``llm/tokens.py``: exact counts, no
download); otherwise characters divided by the model's ``fallback_token_ratio`` plus a small
per-message overhead: a deliberate over- rather than under-estimate.
"""

from __future__ import annotations

import math

from gasworks.llm.tokens import TokenCounters
from gasworks.modeltypes import Message

#: role markers and separators a chat template adds per message
MESSAGE_OVERHEAD = 4


#: process-wide counters (their caches count repeated prompts once)
COUNTERS = TokenCounters()


def estimate_tokens(text: str, ratio: float, tokenizer: str | None = None) -> int:
    if not text:
        return 0
    if tokenizer is not None:
        counter = COUNTERS.get(tokenizer, ratio)
        if counter.exact:
            return counter.count(text)
    return max(1, math.ceil(len(text) / ratio))


def estimate_prompt_tokens(
    messages: list[Message], ratio: float, tokenizer: str | None = None
) -> int:
    if tokenizer is not None:
        counter = COUNTERS.get(tokenizer, ratio)
        if counter.exact:
            return counter.estimate_messages(messages).tokens
    return sum(estimate_tokens(m.text(), ratio) + MESSAGE_OVERHEAD for m in messages) + 2
