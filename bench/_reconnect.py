"""What one reconnect costs the calling process: plaintext and TLS, on aiohttp (the transport
of every gasworks provider adapter but bedrock's).

A tiny upstream (uvicorn + uvloop + httptools, a fixed JSON answer) runs in another process,
once over plain TCP and once over TLS (a self-signed certificate for 127.0.0.1 made here with
``cryptography``; the client trusts it). In this process, one aiohttp request at a time on
uvloop, either on a pooled connection (reused: what a kept-alive pool does) or on a new
connection each time (``force_close``: what a pool whose idle connections expired does for
the first request of each connection). CPU = this process's ``time.process_time`` per
request; interleaved rounds, the order rotating round by round; a reconnect's cost is the
median of per-round (new connection - reused) differences.
"""

from __future__ import annotations

import datetime
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WARM = 200

UPSTREAM = """
import sys
import uvicorn

BODY = b'{"id": "x", "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}'


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})


tls = sys.argv[2:] and {"ssl_certfile": sys.argv[2], "ssl_keyfile": sys.argv[3]} or {}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, loop="uvloop", http="httptools", lifespan="off",
            timeout_keep_alive=300, **tls)
"""


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (ECDSA P-256, as hosted APIs commonly serve)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _start(port: int, tls: tuple[Path, Path] | None) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", UPSTREAM, str(port)]
    if tls:
        args += [str(tls[0]), str(tls[1])]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _measure(plain: str, secure: str, ctx: ssl.SSLContext, rounds: int, n: int) -> Any:
    import aiohttp

    sessions = {
        (tls, fresh): aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=fresh, ssl=ctx if tls else False)
        )
        for tls in (False, True)
        for fresh in (False, True)
    }
    urls = {False: plain, True: secure}

    async def one(tls: bool, fresh: bool) -> None:
        async with sessions[tls, fresh].post(urls[tls], data=b'{"model": "m"}') as r:
            await r.read()

    sides = list(sessions)
    for _ in range(WARM):  # warm-up
        for s in sides:
            await one(*s)
    per: dict[tuple[bool, bool], list[float]] = {s: [] for s in sides}
    load0 = os.getloadavg()[0]
    for r in range(rounds):
        for j in [(r + i) % len(sides) for i in range(len(sides))]:
            c0 = time.process_time()
            for _ in range(n):
                await one(*sides[j])
            per[sides[j]].append((time.process_time() - c0) / n * 1e6)
    for s in sessions.values():
        await s.close()
    return per, (load0, os.getloadavg()[0])


def bench_reconnect(rounds: int = 8, n: int = 200) -> list[str]:
    """Markdown lines: CPU per request on a reused and on a new connection, plain and TLS."""
    import socket

    import uvloop

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    folder = Path(tempfile.mkdtemp())
    cert, key = _certificate(folder)
    p_port, s_port = free_port(), free_port()
    procs = [_start(p_port, None), _start(s_port, (cert, key))]
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        for _ in range(200):  # until both listen
            try:
                socket.create_connection(("127.0.0.1", p_port), 1).close()
                socket.create_connection(("127.0.0.1", s_port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        per, load = uvloop.run(
            _measure(
                f"http://127.0.0.1:{p_port}/v1/chat/completions",
                f"https://127.0.0.1:{s_port}/v1/chat/completions",
                ctx,
                rounds,
                n,
            )
        )
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    med = statistics.median
    lines = [
        f"What one reconnect costs the calling process (`_reconnect.py`): {rounds} interleaved "
        f"rounds of {n} aiohttp requests per row, one at a time, against a minimal uvicorn "
        "upstream in another process (plaintext, and TLS 1.3 with an ECDSA P-256 certificate); "
        "CPU = this process's CPU per request, medians of per-round means; a reconnect = the "
        "median of per-round (new connection - reused) differences. Load average "
        f"{load[0]:.1f} → {load[1]:.1f}.",
        "",
        "| upstream | reused connection, CPU µs per request | new connection each request "
        "| one reconnect costs | load |",
        "|---|---|---|---|---|",
    ]
    for tls, name in ((False, "plaintext (HTTP)"), (True, "TLS (HTTPS)")):
        reused, fresh = per[tls, False], per[tls, True]
        extra = med(f - r for f, r in zip(fresh, reused, strict=True))
        lines.append(
            f"| {name} | {med(reused):.0f} | {med(fresh):.0f} | +{extra:.0f} µs "
            f"| {load[0]:.1f} → {load[1]:.1f} |"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(bench_reconnect()))
