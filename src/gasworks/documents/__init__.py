"""Documents: upload, the durable ingestion pipeline, collections and access, cascade delete.

``documents.domain.DocumentsDomain`` is listed in ``gasworks.wiring``.
"""
