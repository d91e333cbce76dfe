"""Built-in node types, one module each, listed in one place: :func:`builtin_node_types`
(and :func:`default_registry`, a registry of them).

A node module only defines its ``TYPE``; nothing registers itself on import. A new built-in
node type adds its module here; a deployment's own types go into the ``NodeRegistry`` the
workflows domain builds (``NodeRegistry([*builtin_node_types(), MY_TYPE])``).
"""

from __future__ import annotations

from gasworks.workflows.registry import NodeRegistry, NodeType


def builtin_node_types() -> list[NodeType]:
    """Every built-in node type (imports the node modules on first call)."""
    from gasworks.workflows.nodes import (
        conversation_memory,
        format,
        intent_classifier,
        model_invoke,
        router,
        slot_tracker,
        stream_to_client,
        vector_search,
        vector_write,
    )

    return [
        model_invoke.TYPE,
        router.TYPE,
        slot_tracker.TYPE,
        conversation_memory.TYPE,
        format.TYPE,
        stream_to_client.TYPE,
        intent_classifier.TYPE,
        vector_search.TYPE,
        vector_write.TYPE,
    ]


def default_registry() -> NodeRegistry:
    """A new registry of the built-in node types.

    Built on each call, never shared: the workflows domain builds one for its engine, and a
    caller without a runtime (validation in the CLI, a test) gets its own."""
    return NodeRegistry(builtin_node_types())
