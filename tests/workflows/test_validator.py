"""One test per validation error code; every problem is reported at once."""

from __future__ import annotations

from typing import Any

import pytest

from gasworks.errors import WorkflowInvalid
from gasworks.workflows import compile_workflow, validate
from gasworks.workflows.definition import parse_document


def fmt(id_: str, template: str = "x") -> dict[str, Any]:
    return {"id": id_, "type": "Format", "config": {"template": template}}


def router(id_: str, routes: list[tuple[str, str]], default: str | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"routes": [{"when": w, "to": t} for w, t in routes]}
    if default is not None:
        cfg["default"] = default
    return {"id": id_, "type": "Router", "config": cfg}


def wf(nodes: list[dict[str, Any]], edges: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    return {"id": "w", "nodes": nodes, "edges": [{"from": a, "to": b} for a, b in edges or []]}


def codes(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i.code, i.path) for i in validate(doc).issues]


def test_valid_workflow_has_no_issues() -> None:
    doc = wf([fmt("a"), fmt("b")], [("a", "b")])
    assert codes(doc) == []
    g = compile_workflow(doc)
    assert g.entry == ("a",)


def test_parse_error() -> None:
    with pytest.raises(WorkflowInvalid) as e:
        parse_document("nodes: [unclosed")
    assert e.value.details["issues"][0]["code"] == "PARSE_ERROR"


def test_invalid_document() -> None:
    assert ("INVALID_DOCUMENT", "id") in codes({"nodes": []})


def test_node_limit_is_said_in_the_error() -> None:
    """A definition over the 500-node limit is refused with the limit in the message."""
    issues = validate(wf([fmt(f"n{i}") for i in range(501)])).issues
    [issue] = [i for i in issues if i.path == "nodes"]
    assert issue.code == "INVALID_DOCUMENT"
    assert "at most 500 nodes" in issue.message and "501" in issue.message
    assert not [
        i for i in validate(wf([fmt(f"n{i}") for i in range(500)])).issues if i.path == "nodes"
    ]


def test_no_nodes() -> None:
    assert codes(wf([])) == [("NO_NODES", "nodes")]


def test_unknown_node_type() -> None:
    issues = validate(wf([{"id": "a", "type": "Teleport"}])).issues
    assert [(i.code, i.path) for i in issues] == [("UNKNOWN_NODE_TYPE", "nodes[0].type")]
    assert "Router" in issues[0].details["known"]


def test_invalid_config() -> None:
    doc = wf([{"id": "a", "type": "Format", "config": {"template": 3, "bogus": 1}}])
    assert codes(doc) == [
        ("INVALID_CONFIG", "nodes[0].config.template"),
        ("INVALID_CONFIG", "nodes[0].config.bogus"),
    ]


def test_invalid_expression_points_at_column() -> None:
    doc = wf([router("r", [("state.a ===", "b")], "b"), fmt("b")], [("r", "b")])
    issues = validate(doc).issues
    assert [(i.code, i.path) for i in issues] == [
        ("INVALID_EXPRESSION", "nodes[0].config.routes[0].when")
    ]
    assert issues[0].details["column"] >= 9


def test_duplicate_node_id() -> None:
    assert ("DUPLICATE_NODE_ID", "nodes[1].id") in codes(wf([fmt("a"), fmt("a")]))


def test_reserved_node_id() -> None:
    assert ("RESERVED_NODE_ID", "nodes[0].id") in codes(wf([fmt("END")]))


def test_edge_from_unknown() -> None:
    assert codes(wf([fmt("a")], [("ghost", "a")])) == [("EDGE_FROM_UNKNOWN", "edges[0].from")]


def test_edge_to_unknown() -> None:
    assert codes(wf([fmt("a")], [("a", "ghost")])) == [("EDGE_TO_UNKNOWN", "edges[0].to")]


def test_target_unknown() -> None:
    doc = wf([router("r", [("state.x", "ghost")], "b"), fmt("b")], [("r", "b")])
    assert codes(doc) == [("TARGET_UNKNOWN", "nodes[0].config.routes[0].to")]


def test_target_not_connected() -> None:
    doc = wf(
        [router("r", [("state.x", "a")], "b"), fmt("a"), fmt("b")], [("r", "b"), ("START", "a")]
    )
    assert ("TARGET_NOT_CONNECTED", "nodes[0].config.routes[0].to") in codes(doc)


def test_slot_targets_must_be_connected() -> None:
    slot = {
        "id": "s",
        "type": "SlotTracker",
        "config": {
            "slots": [{"name": "email", "type": "email"}],
            "onComplete": "a",
            "onAsk": "b",
            "onFallback": "b",
        },
    }
    doc = wf([slot, fmt("a"), fmt("b")], [("s", "b")])
    assert ("TARGET_NOT_CONNECTED", "nodes[0].config.onComplete") in codes(doc)


def test_reference_unknown() -> None:
    doc = wf(
        [
            {"id": "m", "type": "ModelInvoke", "config": {"historyFrom": "memroy"}},
            {"id": "s", "type": "StreamToClient", "config": {"source": "answr"}},
        ],
        [("m", "s")],
    )
    assert codes(doc) == [
        ("REFERENCE_UNKNOWN", "nodes[0].config.historyFrom"),
        ("REFERENCE_UNKNOWN", "nodes[1].config.source"),
    ]


def test_router_no_default() -> None:
    doc = wf([router("r", [("state.x", "a")], None), fmt("a")], [("r", "a")])
    assert codes(doc) == [("ROUTER_NO_DEFAULT", "nodes[0].config.default")]


def test_unreachable_node() -> None:
    # b and c only reach each other: nothing from START gets there
    doc = wf(
        [
            fmt("a"),
            fmt(
                "b",
            ),
            fmt("c"),
        ],
        [("b", "c"), ("c", "b"), ("START", "a")],
    )
    got = codes(doc)
    assert ("UNREACHABLE_NODE", "nodes[1]") in got and ("UNREACHABLE_NODE", "nodes[2]") in got


def test_cannot_reach_end() -> None:
    doc = wf(
        [fmt("a"), {**fmt("b"), "maxIterations": 3}, fmt("c")], [("a", "b"), ("b", "c"), ("c", "b")]
    )
    got = codes(doc)
    assert ("CANNOT_REACH_END", "nodes[0]") in got and ("CANNOT_REACH_END", "nodes[1]") in got


def test_unbounded_cycle() -> None:
    loop = router("r", [("state.again", "a")], "END")
    doc = wf([fmt("a"), loop], [("a", "r"), ("r", "a"), ("START", "a")])
    assert codes(doc) == [("UNBOUNDED_CYCLE", "nodes[0]")]
    doc["nodes"][0]["maxIterations"] = 5
    assert codes(doc) == []


def test_every_problem_is_reported_at_once_and_publish_refuses() -> None:
    doc = wf(
        [fmt("a"), fmt("a"), {"id": "z", "type": "Nope"}, router("r", [], None)],
        [("a", "ghost")],
    )
    got = {c for c, _ in codes(doc)}
    assert {"DUPLICATE_NODE_ID", "UNKNOWN_NODE_TYPE", "ROUTER_NO_DEFAULT", "EDGE_TO_UNKNOWN"} <= got
    with pytest.raises(WorkflowInvalid) as e:
        compile_workflow(doc)
    assert len(e.value.details["issues"]) == len(codes(doc))


def test_yaml_and_json_documents_are_equivalent() -> None:
    yaml_text = "id: w\nnodes:\n  - {id: a, type: Format, config: {template: hi}}\n"
    json_text = (
        '{"id": "w", "nodes": [{"id": "a", "type": "Format", "config": {"template": "hi"}}]}'
    )
    assert parse_document(yaml_text) == parse_document(json_text, filename="w.json")
