"""Executing a compiled graph: the hot loop.

State is one plain dict: the inputs (also under ``input``), ``context`` ids, each node's output
under its id, and the keys nodes write (``intent``, ``slots``, ``history``, ``turn``). A
worklist walks the graph from the entry nodes: a branching node (Router, SlotTracker) names its
one successor, any other node continues to all of its successors in edge order; END is implicit.
Limits: ``maxSteps`` per run, ``maxIterations`` per node, per-node timeout and retry (compiled
into the node's ``invoke``), cancellation (cancel the task running :func:`execute`).

Nothing here validates, deep-copies or builds events unless someone listens (``rc.emit``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gasworks.errors import (
    GasworksError,
    IterationLimitExceeded,
    MaxStepsExceeded,
    RunCancelled,
    ValidationFailed,
)
from gasworks.observability import tracing
from gasworks.observability.logging import get_logger
from gasworks.workflows.context import EventSink, Routed, RunContext
from gasworks.workflows.graph import CompiledGraph, describe_error
from gasworks.workflows.model_stream import ModelStream

log = get_logger("gasworks.workflows")

#: key under which the final output is visible to finalizers
OUTPUT_KEY = "__output__"


def ms3(ms: float) -> float:
    """A non-negative duration in ms to the microsecond (3 decimals): ``round(ms, 3)`` up to
    the last bit at exact half-microseconds, in a fifth of its time (``round`` with digits
    goes through a decimal string; a run rounds a dozen timings)."""
    return int(ms * 1000.0 + 0.5) / 1000.0


@dataclass(slots=True)
class NodeTiming:
    node_id: str
    type: str
    started_ms: float
    duration_ms: float
    status: str = "succeeded"
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "nodeId": self.node_id,
            "type": self.type,
            "startedMs": ms3(self.started_ms),
            "durationMs": ms3(self.duration_ms),
            "status": self.status,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(slots=True)
class RunOutcome:
    status: str  # succeeded | failed | cancelled
    output: Any
    state: dict[str, Any]
    steps: int
    timings: list[NodeTiming] = field(default_factory=list)
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0


def initial_state(graph: CompiledGraph, inputs: dict[str, Any], rc: RunContext) -> dict[str, Any]:
    """Inputs checked against the state schema once (defaults applied, types checked)."""
    schema = graph.definition.state
    if schema:
        inputs = dict(inputs)
        problems: list[dict[str, str]] = []
        for name, f in schema.items():
            if name not in inputs or inputs[name] is None:
                if f.required:
                    problems.append({"path": f"input.{name}", "message": "required"})
                elif f.default is not None:
                    inputs[name] = f.default
                continue
            if not _type_ok(f.type, inputs[name]):
                problems.append({"path": f"input.{name}", "message": f"expected {f.type}"})
        if problems:
            raise ValidationFailed(
                "The run's inputs do not match the workflow's state schema.",
                details={"issues": problems},
            )
    state = dict(inputs)
    state["input"] = inputs
    state["context"] = {
        "tenantId": rc.tenant_id,
        "workflowId": rc.workflow_id,
        "runId": rc.run_id,
        "conversationId": rc.conversation_id,
        "sessionId": rc.session_id,
        "requestId": rc.request_id,
    }
    return state


def _type_ok(kind: str, v: Any) -> bool:
    if kind == "any":
        return True
    if kind == "string":
        return isinstance(v, str)
    if kind == "boolean":
        return isinstance(v, bool)
    if kind == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "number":
        return isinstance(v, int | float) and not isinstance(v, bool)
    if kind == "object":
        return isinstance(v, dict)
    return isinstance(v, list)


async def execute(
    graph: CompiledGraph,
    inputs: dict[str, Any],
    rc: RunContext,
    *,
    state: dict[str, Any] | None = None,
    timings: list[NodeTiming] | None = None,
) -> RunOutcome:
    """Run ``graph`` to completion. Never raises for a node failure (the outcome says
    ``failed``); raises ``CancelledError`` through when the task is cancelled, after recording
    the node it was in into ``timings`` (pass a list to keep them)."""
    t_run = time.perf_counter()
    if state is None:
        state = initial_state(graph, inputs, rc)
    conv = await rc.conversation() if rc.conversation_id is not None else None
    if conv is not None:
        state["turn"] = conv.turn + 1
    nodes = graph.nodes
    emit = rc.emit
    if timings is None:
        timings = []
    queue: deque[str] = deque(graph.entry)
    steps = 0
    max_steps = graph.max_steps
    iterations: dict[str, int] | None = None
    output: Any = None
    node_id = ""
    cn = None
    t0 = t_run
    try:
        while queue:
            node_id = queue.popleft()
            cn = nodes[node_id]
            steps += 1
            if steps > max_steps:
                raise MaxStepsExceeded(
                    f"The run exceeded its limit of {max_steps} steps.",
                    details={"maxSteps": max_steps, "node": node_id},
                )
            if cn.max_iterations is not None:
                if iterations is None:
                    iterations = {}
                count = iterations[node_id] = iterations.get(node_id, 0) + 1
                if count > cn.max_iterations:
                    raise IterationLimitExceeded(
                        f"Node '{node_id}' ran more than {cn.max_iterations} times.",
                        details={"node": node_id, "maxIterations": cn.max_iterations},
                    )
            rc.node_id = node_id
            if emit is not None:
                emit("node.started", {"nodeId": node_id, "type": cn.type, "step": steps})
            t0 = time.perf_counter()
            if tracing.recording():
                with tracing.span(
                    "gasworks.workflow_node",
                    workflowId=rc.workflow_id,
                    nodeId=node_id,
                    nodeType=cn.type,
                    runId=rc.run_id,
                    requestId=rc.request_id,
                ):
                    result = await cn.invoke(state, rc)
            else:
                result = await cn.invoke(state, rc)
            t1 = time.perf_counter()
            if type(result) is Routed:
                output = state[node_id] = result.value
                if result.to != "END":
                    queue.append(result.to)
            else:
                output = state[node_id] = result
                queue.extend(cn.successors)
            timings.append(NodeTiming(node_id, cn.type, (t0 - t_run) * 1000, (t1 - t0) * 1000))
            if emit is not None and isinstance(output, ModelStream) and not output.done:
                # a streamed answer: node.finished once it is complete, with its text and usage
                output.on_done = _finished_later(emit, node_id, cn.type, t0)
            elif emit is not None:
                emit(
                    "node.finished",
                    {
                        "nodeId": node_id,
                        "type": cn.type,
                        "durationMs": round((t1 - t0) * 1000, 3),
                        "output": _preview(output),
                    },
                )
        for stream in rc.streams:
            if not stream.done:
                state[stream.node_id] = await stream.drain()
        if isinstance(output, ModelStream):
            output = output.result()
        if rc.finalizers:
            state[OUTPUT_KEY] = output
            for fin in rc.finalizers:
                fin(state)
            state.pop(OUTPUT_KEY, None)
        return RunOutcome(
            "succeeded",
            output,
            state,
            steps,
            timings,
            duration_ms=(time.perf_counter() - t_run) * 1000,
        )
    except asyncio.CancelledError:
        _fail(timings, cn, node_id, t0, t_run, {"code": RunCancelled.code, "message": "cancelled"})
        raise
    except Exception as exc:
        err = describe_error(exc)
        if not isinstance(exc, GasworksError) or err.get("code") == "INTERNAL":
            # a bug (ours or a node's): the run records INTERNAL, the log keeps the traceback
            log.exception("workflow.node_crashed", node=node_id, error_type=type(exc).__name__)
        err.setdefault("details", {})["node"] = node_id
        _fail(timings, cn, node_id, t0, t_run, err)
        return RunOutcome(
            "failed",
            None,
            state,
            steps,
            timings,
            err,
            duration_ms=(time.perf_counter() - t_run) * 1000,
        )


def _fail(
    timings: list[NodeTiming],
    cn: Any,
    node_id: str,
    t0: float,
    t_run: float,
    err: dict[str, Any],
) -> None:
    if cn is None or (
        timings and timings[-1].node_id == node_id and timings[-1].status != "succeeded"
    ):
        return
    now = time.perf_counter()
    timings.append(
        NodeTiming(node_id, cn.type, (t0 - t_run) * 1000, (now - t0) * 1000, "failed", err)
    )


def _finished_later(
    emit: EventSink, node_id: str, node_type: str, t0: float
) -> Callable[[ModelStream], None]:
    def done(stream: ModelStream) -> None:
        emit(
            "node.finished",
            {
                "nodeId": node_id,
                "type": node_type,
                "durationMs": round((time.perf_counter() - t0) * 1000, 3),
                "output": stream.result(),
            },
        )

    return done


def _preview(value: Any) -> Any:
    """What node.finished events carry: small JSON-able values whole, big ones cut."""
    if isinstance(value, ModelStream):
        return value.result()
    if isinstance(value, str):
        return value if len(value) <= 2000 else value[:2000] + "…"
    if value is None or isinstance(value, int | float | bool):
        return value
    if isinstance(value, dict | list):
        return value
    return str(value)[:2000]
