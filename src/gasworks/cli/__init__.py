"""The ``gasworks`` command."""
