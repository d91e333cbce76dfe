"""Fit a conversation into a token budget: drop the oldest memory first, the system last.

Policy (in order, stopping as soon as the prompt fits):

1. keep every system message and the current (last) user message;
2. drop the other messages oldest first (an assistant tool call and its tool answers go
   together, so no orphan tool message is ever sent);
3. as the last resort, shorten the system message(s) from the end;
4. if even that is not enough (the current user message alone is too long), it does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gasworks.llm.tokens import REPLY_PRIMING, TOKENS_PER_MESSAGE, TokenCounter
from gasworks.modeltypes import Message
from gasworks.observability.logging import get_logger

log = get_logger("gasworks.llm.truncation")


@dataclass(slots=True)
class TruncationResult:
    messages: list[Message]
    fits: bool
    tokens_before: int
    tokens_after: int
    #: indices (in the original list) of the messages left out
    dropped: list[int] = field(default_factory=list)
    system_truncated: bool = False
    system_tokens_removed: int = 0

    def summary(self) -> dict[str, object]:
        return {
            "droppedMessages": len(self.dropped),
            "droppedIndices": self.dropped,
            "systemTruncated": self.system_truncated,
            "systemTokensRemoved": self.system_tokens_removed,
            "tokensBefore": self.tokens_before,
            "tokensAfter": self.tokens_after,
        }


def _groups(messages: list[Message], protected: set[int]) -> list[list[int]]:
    """Droppable message indices, oldest first, tool answers grouped with their call."""
    out: list[list[int]] = []
    for i, m in enumerate(messages):
        if i in protected:
            continue
        if m.role == "tool" and out and messages[out[-1][0]].tool_calls:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _shorten(counter: TokenCounter, text: str, keep_tokens: int) -> str:
    if keep_tokens <= 0:
        return ""
    enc = counter.encoding
    if enc is not None:
        try:
            return enc.decode(enc.encode_ordinary(text)[:keep_tokens])
        except Exception:  # never fail because of the tokenizer
            log.warning("truncation.decode_failed", tokenizer=counter.name)
    return text[: int(keep_tokens * counter.ratio)]


def fit_messages(messages: list[Message], counter: TokenCounter, budget: int) -> TruncationResult:
    """Messages that fit ``budget`` prompt tokens, with what was dropped."""
    sizes = [counter.count_message(m) for m in messages]
    total = REPLY_PRIMING + sum(sizes)
    if total <= budget:
        return TruncationResult(list(messages), True, total, total)
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    systems = {i for i, m in enumerate(messages) if m.role == "system"}
    protected = systems | ({last_user} if last_user >= 0 else set())
    dropped: list[int] = []
    for group in _groups(messages, protected):
        if total <= budget:
            break
        dropped.extend(group)
        total -= sum(sizes[i] for i in group)
    kept = [replace(m) for i, m in enumerate(messages) if i not in set(dropped)]
    result = TruncationResult(kept, total <= budget, REPLY_PRIMING + sum(sizes), total, dropped)
    if result.fits:
        return result
    # last resort: shorten system messages, the last one first
    for m in reversed(kept):
        if total <= budget:
            break
        if m.role != "system":
            continue
        text = m.text()
        size = counter.count(text)
        excess = total - budget
        new_text = _shorten(counter, text, size - excess)
        new_size = counter.count(new_text)
        m.content = new_text
        result.system_truncated = True
        result.system_tokens_removed += size - new_size
        total -= size - new_size
    result.tokens_after = total
    result.fits = total <= budget
    return result


__all__ = ["TOKENS_PER_MESSAGE", "TruncationResult", "fit_messages"]
