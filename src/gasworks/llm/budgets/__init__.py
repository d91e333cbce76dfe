"""Spend control beside the breakers (``llm/breaker/``): budget limits and their service
(``limits``), the counter transactions (``store``), per-process budget leases (``leases``)
and the cost ledger every call is written to (``ledger``). Importing the package imports
nothing else."""
