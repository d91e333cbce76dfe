"""Models as infrastructure: registry, providers, guardrails, ledger, gateway.

Importing the package registers the model services' runtime hooks (``llm/runtime.py``), so any
process that imports gasworks.llm gets a started registry and gateway with its ``Runtime``.
"""

from gasworks.llm import runtime as _runtime  # noqa: F401  (registers startup/shutdown hooks)
