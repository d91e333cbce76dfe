"""Retrieval: embeddings through the gateway, vector indexes, search, the vector nodes.

The contract shared with the documents pipeline lives in :mod:`gasworks.retrieval.types`.
"""
