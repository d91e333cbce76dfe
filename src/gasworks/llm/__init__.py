"""Models as infrastructure: registry, providers, guardrails, ledger, gateway.

Importing the package imports nothing else; ``gasworks.wiring`` starts the model services
(``llm/runtime.py``) with each ``Runtime``.
"""
