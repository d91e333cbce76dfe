"""HTTP API: REST, GraphQL and (with the models work) the OpenAI-compatible routes."""
