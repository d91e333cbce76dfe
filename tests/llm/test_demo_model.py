"""The offline demo model: canned, deterministic answers; given numbered sources and a
question (the prompt of the `demo-rag` workflow), an extractive answer with citations."""

from __future__ import annotations

import json
from typing import Any

from gasworks.llm.providers.demo import demo_text, grounded_answer
from gasworks.modeltypes import ChatRequest, Message

SOURCES = """Answer the question using only the numbered sources below.

Sources:
[1] (leave.md, § Annual leave) Every employee gets 27 days of paid annual leave per year. Unused leave carries over until 31 March.
[2] (manual.pdf, p. 2) Hold the reset button for five seconds.
The boiler restarts after a lockout.
[3] (expenses.md, § Travel) Flights need written approval from your team lead.

Question: """  # noqa: E501


def _ask(prompt: str, **kw: Any) -> str:
    return demo_text(ChatRequest(model="demo", messages=[Message("user", prompt)], **kw))


def test_the_answer_quotes_the_matching_sentences_with_their_source_numbers() -> None:
    answer = _ask(
        SOURCES + "How many days of annual leave do I get, and does unused leave carry over?"
    )
    assert answer == (
        "[demo] From the documents: Every employee gets 27 days of paid annual leave per year "
        "[1]. Unused leave carries over until 31 March [1].\n"
        "Sources: [1] leave.md, § Annual leave"
    )
    # a passage over several lines, a page citation, a later source
    answer = _ask(SOURCES + "How long do I hold the reset button after a boiler lockout?")
    assert answer == (
        "[demo] From the documents: Hold the reset button for five seconds [2]. The boiler "
        "restarts after a lockout [2].\nSources: [2] manual.pdf, p. 2"
    )
    answer = _ask(SOURCES + "Who approves flights?")
    assert answer.endswith("team lead [3].\nSources: [3] expenses.md, § Travel")


def test_without_a_shared_word_the_top_passage_is_offered_as_the_closest() -> None:
    answer = _ask(SOURCES + "Vacation?")
    assert answer.startswith("[demo] The closest passage I found: Every employee gets 27 days")
    assert answer.endswith("Sources: [1] leave.md, § Annual leave")


def test_without_sources_it_says_so_and_cites_nothing() -> None:
    answer = _ask("Sources:\n\n\nQuestion: How many days of leave?")
    assert answer == '[demo] None of the documents you may read answers "How many days of leave?".'


def test_other_prompts_get_the_canned_answer_and_json_mode_wraps_either() -> None:
    assert grounded_answer("What is a gasholder?") is None
    assert grounded_answer("Question: but no sources block") is None
    canned = _ask("What is a gasholder?")
    assert canned.startswith("[demo] ") and 'You asked about "What is a gasholder?"' in canned
    assert canned == _ask("What is a gasholder?")  # deterministic
    wrapped = json.loads(
        _ask(SOURCES + "Who approves flights?", response_format={"type": "json_object"})
    )
    assert wrapped["demo"] is True and wrapped["answer"].endswith("expenses.md, § Travel")
