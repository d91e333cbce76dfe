"""Models as infrastructure: registry, providers, guardrails, ledger, gateway."""
