from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gasworks.errors import TemplateSyntaxError, TemplateVariableMissing
from gasworks.modeltypes import Message
from gasworks.prompts.content import CompiledPrompt, PromptContent
from gasworks.prompts.formatter import format_messages
from gasworks.prompts.templates import compile_template, render, template_values


def test_paths_of_every_namespace():
    values = template_values(
        inputs={"user_prompt": "hello"},
        nodes={"retrieve": {"output": {"text": "doc text"}}},
        slots={"city": "Lyon"},
        context={"sessionId": "s-1"},
        workflow_id="wf-9",
        conversation_id="conv-3",
    )
    text = (
        "${inputs.user_prompt}|${retrieve.output.text}|${slots.city}|${context.sessionId}|"
        "${workflowId}|${conversationId}|${context.conversationId}"
    )
    r = render(text, values)
    assert r.text == "hello|doc text|Lyon|s-1|wf-9|conv-3|conv-3"
    assert r.missing == ()


def test_missing_variable_renders_empty_and_is_listed():
    r = render("a${inputs.x}b${inputs.y.z}c", {"inputs": {"y": "not a mapping"}})
    assert r.text == "abc"
    assert r.missing == ("inputs.x", "inputs.y.z")


def test_none_counts_as_missing():
    assert render("[${inputs.x}]", {"inputs": {"x": None}}).missing == ("inputs.x",)


def test_strict_mode_raises():
    with pytest.raises(TemplateVariableMissing) as err:
        render("${inputs.a} ${inputs.b}", {"inputs": {"a": 1}}, strict=True)
    assert err.value.details["missing"] == ["inputs.b"]


def test_escape_and_lone_dollars():
    assert render("$${inputs.x} costs $5 and $$", {"inputs": {"x": "no"}}).text == (
        "${inputs.x} costs $5 and $$"
    )
    # a lone '$' stays literal; the escape is the '$${' that follows it
    assert render("$$${inputs.x}", {"inputs": {"x": "v"}}).text == "$${inputs.x}"
    assert render("$ ${inputs.x}", {"inputs": {"x": "v"}}).text == "$ v"


def test_no_html_escaping_and_value_formats():
    values = {"inputs": {"h": "<b>&'\"</b>", "t": True, "n": 3.5, "o": {"k": [1, "é"]}}}
    r = render("${inputs.h} ${inputs.t} ${inputs.n} ${inputs.o}", values)
    assert r.text == '<b>&\'"</b> true 3.5 {"k":[1,"é"]}'


def test_values_are_not_reinterpolated():
    r = render("${inputs.a}", {"inputs": {"a": "${inputs.b}", "b": "secret"}})
    assert r.text == "${inputs.b}"


def test_whitespace_inside_placeholder():
    assert render("${ inputs.a }", {"inputs": {"a": "x"}}).text == "x"


@pytest.mark.parametrize(
    "bad", ["${", "x ${inputs.a", "${}", "${inputs..a}", "${inputs.a b}", "${inputs[0]}", "${.a}"]
)
def test_syntax_errors_name_the_position(bad):
    with pytest.raises(TemplateSyntaxError) as err:
        compile_template(bad)
    assert err.value.details["line"] == 1


def test_syntax_error_line_and_column():
    with pytest.raises(TemplateSyntaxError) as err:
        compile_template("ok\nstill ok ${bad path}")
    assert (err.value.details["line"], err.value.details["column"]) == (2, 10)


def test_compiled_once():
    assert compile_template("x ${inputs.a}") is compile_template("x ${inputs.a}")
    assert compile_template("x ${inputs.a}").variables == ["inputs.a"]


def test_formatter_orders_system_history_user():
    prompt = CompiledPrompt.of(PromptContent(system="sys ${slots.s}", user="${inputs.q}"))
    history = [Message("user", "earlier"), Message("assistant", "reply")]
    out = format_messages(prompt, {"inputs": {"q": "now"}}, history)
    assert [(m.role, m.content) for m in out.messages] == [
        ("system", "sys "),
        ("user", "earlier"),
        ("assistant", "reply"),
        ("user", "now"),
    ]
    assert out.missing == ["slots.s"]


def test_formatter_messages_form_and_parameters():
    content = PromptContent(
        messages=[
            {"role": "system", "content": "a"},
            {"role": "system", "content": "b"},
            {"role": "user", "content": "example ${inputs.x}"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": "${inputs.q}"},
        ],
        parameters={"temperature": 0.2},
    )
    out = format_messages(
        CompiledPrompt.of(content), {"inputs": {"x": 1, "q": "?"}}, [Message("user", "h")]
    )
    assert [m.role for m in out.messages] == [
        "system",
        "system",
        "user",
        "user",
        "assistant",
        "user",
    ]
    assert out.messages[2].content == "h" and out.messages[3].content == "example 1"
    assert out.parameters == {"temperature": 0.2}


# --- properties ------------------------------------------------------------------------------

_segment = st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True)
_plain = st.text(alphabet=st.characters(blacklist_characters="$"), max_size=30)


@given(_plain)
def test_text_without_dollar_is_unchanged(text):
    assert render(text, {}).text == text


@given(st.text(max_size=40))
def test_escaped_text_renders_literally(text):
    """Escaping every '${' as '$${' round-trips any text."""
    escaped = text.replace("${", "$${")
    assert render(escaped, {}).text == text


@given(st.lists(_segment, min_size=1, max_size=4), st.text(max_size=30), _plain, _plain)
def test_value_inserted_verbatim(path, value, before, after):
    values: dict = {}
    cur = values
    for seg in path[:-1]:
        cur = cur.setdefault(seg, {})
    cur[path[-1]] = value
    r = render(before + "${" + ".".join(path) + "}" + after, values)
    assert r.text == before + value + after and r.missing == ()


@given(st.lists(_segment, min_size=1, max_size=4), _plain)
def test_missing_path_renders_empty(path, around):
    r = render(around + "${" + ".".join(path) + "}" + around, {})
    assert r.text == around + around
    assert r.missing == (".".join(path),)
