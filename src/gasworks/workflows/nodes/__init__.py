"""Built-in node types, one module each. Every module registers its type on import."""
