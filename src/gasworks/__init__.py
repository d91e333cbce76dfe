"""gasworks: models, prompts and workflows as infrastructure, for many tenants."""

__version__ = "0.1.0"

__all__ = ["__version__"]
