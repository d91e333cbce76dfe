"""The domains a process runs, loaded in dependency order.

Importing a domain registers its startup/shutdown hooks (``gasworks.runtime``). Modules get
imported in whatever order the entry point happens to need them (the API imports routers, the
CLI its commands, a test its fixtures), so ``load()`` imports every domain and then sorts the
hooks into dependency order: models before guardrails (which attach to the gateway) and prompts
(which key scopes by the registry's model ids), both before workflows. ``Runtime.start`` calls
it, so no caller has to remember an import.
"""

from __future__ import annotations

import importlib

from gasworks.runtime import SHUTDOWN_HOOKS, STARTUP_HOOKS

#: in start order (stopped in reverse)
DOMAIN_MODULES: tuple[str, ...] = (
    "gasworks.llm.runtime",
    "gasworks.llm.guardrails_runtime",
    "gasworks.prompts.service",
    "gasworks.workflows",
    "gasworks.documents",
)


def load() -> None:
    for name in DOMAIN_MODULES:
        importlib.import_module(name)
    rank = {name: i for i, name in enumerate(DOMAIN_MODULES)}
    STARTUP_HOOKS.sort(key=lambda hook: rank.get(hook.__module__, len(rank)))
    SHUTDOWN_HOOKS.sort(key=lambda hook: rank.get(hook.__module__, len(rank)))
