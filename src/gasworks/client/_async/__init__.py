"""The async client: the one hand-written source of both clients (see ``client.py``)."""
