"""The test network guard: loopback only."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.netguard import NetworkBlocked


@pytest.mark.parametrize("address", [("10.0.0.1", 80), ("8.8.8.8", 53), ("2001:db8::1", 443)])
def test_non_loopback_connect_is_refused(address):
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s, pytest.raises(NetworkBlocked):
        s.connect(address)


def test_connect_ex_is_guarded_too():
    with socket.socket() as s, pytest.raises(NetworkBlocked):
        s.connect_ex(("10.0.0.1", 80))


def test_resolving_a_public_name_is_refused():
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("example.com", 443)


def test_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        accepted: list[bytes] = []

        def accept() -> None:
            conn, _ = server.accept()
            with conn:
                accepted.append(conn.recv(5))

        t = threading.Thread(target=accept)
        t.start()
        with socket.create_connection(("localhost", port), timeout=5) as c:
            c.sendall(b"hello")
        t.join(timeout=5)
    assert accepted == [b"hello"]


async def test_httpx_to_a_public_host_is_refused():
    import httpx

    async with httpx.AsyncClient() as c:
        with pytest.raises(BaseException) as info:
            await c.get("http://10.0.0.1:9/")
    assert _contains_blocked(info.value)


def _contains_blocked(exc: BaseException) -> bool:
    """NetworkBlocked, possibly wrapped (anyio raises it inside an exception group)."""
    if isinstance(exc, NetworkBlocked):
        return True
    inner = [*getattr(exc, "exceptions", ()), exc.__cause__, exc.__context__]
    return any(_contains_blocked(e) for e in inner if e is not None)
