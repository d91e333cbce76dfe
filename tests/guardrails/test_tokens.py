"""Token estimation: shipped tiktoken encodings, the ratio fallback, repeated-content cache."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gasworks.llm.tokens import TokenCounter, TokenCounters, get_encoding, utf8_len
from gasworks.llm.truncation import fit_messages
from gasworks.modeltypes import Message


def test_shipped_encodings_match_known_token_ids() -> None:
    cl = get_encoding("cl100k_base")
    o2 = get_encoding("o200k_base")
    assert cl is not None and o2 is not None
    assert cl.encode("hello world") == [15339, 1917]
    assert o2.encode("hello world") == [24912, 2375]
    assert cl.encode("<|endoftext|>", allowed_special="all") == [100257]
    assert cl.decode(cl.encode("Grüße, 世界! 12345")) == "Grüße, 世界! 12345"


def test_estimate_says_which_tokenizer_and_whether_exact() -> None:
    exact = TokenCounter("cl100k_base").estimate_text("hello world")
    assert (exact.tokens, exact.tokenizer, exact.exact) == (2, "cl100k_base", True)
    approx = TokenCounter("claude-tokenizer", 3.5).estimate_text("x" * 35)
    assert (approx.tokens, approx.tokenizer, approx.exact) == (10, "ratio:3.5", False)
    # no tokenizer and no ratio: never fails, default ratio
    assert TokenCounter(None).estimate_text("abcdefgh").tokens == 2


def test_repeated_content_is_counted_once() -> None:
    counter = TokenCounter("cl100k_base", cache_min_chars=10)
    calls = 0
    real = counter._encode_len

    def spy(text: str) -> int:
        nonlocal calls
        calls += 1
        return real(text)

    counter._encode_len = spy  # type: ignore[method-assign]
    system = "You are a helpful assistant for the gasworks docs. " * 20
    first = counter.count(system)
    for _ in range(100):
        assert counter.count(system) == first
    assert calls == 1


def test_message_estimate_includes_chat_overhead() -> None:
    counter = TokenCounters().get("cl100k_base")
    msgs = [Message("system", "You are terse."), Message("user", "hello world")]
    est = counter.estimate_messages(msgs)
    # OpenAI's accounting: 3 per message + 3 reply priming + content tokens
    assert est.tokens == 3 + 3 + 3 + counter.count("You are terse.") + 2
    assert est.exact


def test_a_request_is_counted_exactly_in_one_tokenizer_call() -> None:
    """The short texts of a request are encoded together (one GIL hand-back, not one per
    message): the count is tiktoken's, text by text, whatever the texts' edges hold."""
    counter = TokenCounter("cl100k_base")
    enc = get_encoding("cl100k_base")
    assert enc is not None
    calls = 0
    real = enc.encode

    def spy(*args: object, **kwargs: object) -> list[int]:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    texts = ["Hello  ", "\n\nworld", "  trailing\t", "123456", "ünïcode 世界 🙂", "a'll", "x\r"]
    msgs = [Message("user", t) for t in texts] + [
        Message("assistant", "done", name="bot"),
        Message("user", "<|fim_prefix|> is plain text here"),
    ]
    expected = 3 + sum(
        3
        + len(enc.encode_ordinary(m.text()))
        + (1 + len(enc.encode_ordinary(m.name)) if m.name else 0)
        for m in msgs
    )
    enc.encode = spy  # type: ignore[method-assign]
    try:
        assert counter.estimate_messages(msgs).tokens == expected
        assert calls == 1
        # a text holding the separator's literal is counted on its own, still exactly
        odd = [Message("user", "a <|endoftext|> b"), Message("user", "c")]
        want = 3 + sum(3 + len(enc.encode_ordinary(m.text())) for m in odd)
        assert counter.estimate_messages(odd).tokens == want
    finally:
        del enc.encode


def test_truncation_drops_oldest_memory_first_then_system_last() -> None:
    counter = TokenCounter("cl100k_base", cache_min_chars=10**9)
    history = [Message("user" if i % 2 == 0 else "assistant", f"turn {i} " * 40) for i in range(6)]
    msgs = [Message("system", "rules " * 50), *history, Message("user", "the question")]
    full = counter.estimate_messages(msgs).tokens
    budget = full - counter.count_message(history[0]) - counter.count_message(history[1]) + 1
    res = fit_messages(msgs, counter, budget)
    assert res.fits and res.dropped == [1, 2] and not res.system_truncated
    assert res.messages[0].role == "system" and res.messages[-1].text() == "the question"
    # nothing but system + question fits after shortening the system message
    tight = counter.count_message(msgs[-1]) + 3 + 3 + 20
    res = fit_messages(msgs, counter, tight)
    assert res.fits and res.system_truncated
    assert [m.role for m in res.messages] == ["system", "user"]
    assert res.tokens_after <= tight
    assert msgs[0].text() == "rules " * 50  # the caller's messages are not modified
    # the question alone is too long: does not fit
    assert not fit_messages(msgs, counter, 5).fits


def test_truncation_keeps_tool_answers_with_their_call() -> None:
    counter = TokenCounter("cl100k_base")
    call = Message("assistant", "", tool_calls=[{"id": "c1", "function": {"name": "f"}}])
    msgs = [
        Message("system", "s"),
        call,
        Message("tool", "result " * 100, tool_call_id="c1"),
        Message("user", "q"),
    ]
    res = fit_messages(msgs, counter, 30)
    assert res.fits and res.dropped == [1, 2]


def test_long_documents_are_counted_once_without_being_kept() -> None:
    counter = TokenCounter("cl100k_base")
    doc = "A long document about gas networks and pressure regulators. " * 2000
    first = counter.count(doc)
    same = "".join(["A long document about gas networks and pressure regulators. "] * 2000)
    assert same is not doc
    counter.encoding = None  # a second count that tokenized again would now use the ratio
    assert counter.count(same) == first
    assert all(not isinstance(k, str) or len(k) <= 4096 for k in counter._cache)


def test_short_texts_are_counted_once_each_exactly() -> None:
    """Short texts counted together are remembered one by one, each with tiktoken's own
    count: a request that repeats them (a chat's earlier turns) calls no tokenizer."""
    counter = TokenCounter("cl100k_base")
    enc = get_encoding("cl100k_base")
    assert enc is not None
    texts = ["Hello  ", "\n\nworld", "  trailing\t", "123456", "ünïcode 世界 🙂", "a'll", "x\r"]
    msgs = [Message("user", t) for t in texts]
    first = counter.estimate_messages(msgs).tokens
    assert {t: counter._short[t] for t in texts} == {t: len(enc.encode_ordinary(t)) for t in texts}
    calls = 0

    def spy(*args: object, **kwargs: object) -> list[int]:
        nonlocal calls
        calls += 1
        return []

    enc.encode = spy  # type: ignore[method-assign]
    enc.encode_ordinary = spy  # type: ignore[method-assign]
    try:
        assert counter.estimate_messages(msgs).tokens == first
        assert counter.count("a'll") == 2
        assert calls == 0
    finally:
        del enc.encode, enc.encode_ordinary


def test_the_short_text_cache_is_bounded() -> None:
    counter = TokenCounter("cl100k_base", cache_size=2)
    for text in ("one", "two", "three", "four", "five"):
        assert counter.count(text) == 1
        assert len(counter._short) <= 2


#: any code point, lone surrogates included (tiktoken counts each as a U+FFFD)
_any_text = st.text(st.characters(exclude_categories=()), max_size=200)
_words = st.text(st.sampled_from("ab 1\n'é世🙂<|>"), max_size=60)


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(_any_text, _words))
def test_utf8_bytes_never_undercount_tokens(name: str, text: str) -> None:
    enc = get_encoding(name)
    assert enc is not None
    assert len(enc.encode_ordinary(text)) <= utf8_len(text)
    assert TokenCounter(name).count(text) <= utf8_len(text)


_message = st.builds(
    Message,
    role=st.sampled_from(["system", "user", "assistant"]),
    content=st.one_of(_any_text, _words),
    name=st.one_of(st.none(), _words),
    tool_calls=st.one_of(
        st.none(),
        st.lists(
            st.builds(lambda n, a: {"function": {"name": n, "arguments": a}}, _words, _any_text),
            max_size=2,
        ),
    ),
)


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(_message, max_size=6))
def test_the_messages_bound_is_never_below_the_exact_estimate(messages: list[Message]) -> None:
    counter = TokenCounter("cl100k_base")
    bound = counter.bound_messages(messages)
    assert bound is not None and bound >= counter.estimate_messages(messages).tokens


def test_a_ratio_counter_has_no_bound() -> None:
    assert TokenCounter("claude-tokenizer", 3.5).bound_messages([Message("user", "hi")]) is None
