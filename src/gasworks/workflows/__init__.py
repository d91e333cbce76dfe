"""Workflows as validated node graphs, run by a fast engine that streams to the client.

Public surface: :func:`validate`, :func:`compile_workflow`, :func:`execute`, the node registry
(:class:`NodeRegistry`, :class:`NodeType`, :func:`default_registry`), the ports, and
:func:`workflow_engine` (the runtime's :class:`WorkflowEngine`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gasworks.workflows.context import Routed, RunContext
from gasworks.workflows.graph import CompiledGraph, compile_workflow
from gasworks.workflows.ports import ConversationData, ModelCaller, Ports, PromptSource, Retrieval
from gasworks.workflows.registry import NodeRegistry, NodeType, default_registry
from gasworks.workflows.runner import RunOutcome, execute
from gasworks.workflows.validator import ValidationIssue, ValidationResult, validate

if TYPE_CHECKING:
    from gasworks.runtime import Runtime
    from gasworks.workflows.engine import WorkflowEngine

__all__ = [
    "CompiledGraph",
    "ConversationData",
    "ModelCaller",
    "NodeRegistry",
    "NodeType",
    "Ports",
    "PromptSource",
    "Retrieval",
    "Routed",
    "RunContext",
    "RunOutcome",
    "ValidationIssue",
    "ValidationResult",
    "WorkflowsDomain",
    "compile_workflow",
    "default_registry",
    "execute",
    "validate",
    "workflow_engine",
]

SERVICE = "workflows"


def workflow_engine(runtime: Runtime) -> WorkflowEngine:
    """The runtime's workflow engine (built by ``WorkflowsDomain.start``)."""
    from gasworks.workflows.engine import WorkflowEngine

    eng = runtime.services.get(SERVICE)
    if not isinstance(eng, WorkflowEngine):
        eng = _build(runtime)
    return eng


def _build(runtime: Runtime) -> WorkflowEngine:
    from gasworks.db.leader import is_leader
    from gasworks.workflows.engine import WorkflowEngine
    from gasworks.workflows.wiring import build_ports

    s = runtime.settings
    eng = WorkflowEngine(
        runtime.db,
        lambda: build_ports(runtime),
        persist=s.workflow_persist_runs,
        cache_size=s.workflow_graph_cache_size,
        flush_interval=s.workflow_event_flush_seconds,
        access_ttl=s.workflow_access_cache_seconds,
        nodes=default_registry(),
        lease_ttl=s.workflow_run_lease_seconds,
        sweep_interval=s.workflow_run_sweep_seconds,
        leader=lambda: is_leader(runtime),
        max_running=s.workflow_max_running,
        max_pending_writes=s.workflow_max_pending_writes,
        max_followers=s.workflow_max_followers_per_run,
    )
    runtime.services[SERVICE] = eng
    return eng


class WorkflowsDomain:
    """The workflow engine (``workflow_engine(rt)``); start it after models and prompts."""

    name = SERVICE

    async def start(self, rt: Runtime) -> None:
        _build(rt).start_maintenance()  # run leases: heartbeat and sweep (workflows/leases.py)

    async def stop(self, rt: Runtime) -> None:
        eng = rt.services.pop(SERVICE, None)
        if eng is not None:
            await eng.close()
