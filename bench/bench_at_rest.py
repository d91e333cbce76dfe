"""What encrypting conversation messages at rest would cost, against the write it would join.

Issue #18 asked whether conversation messages (and inline prompt content) should be envelope-
encrypted with the master key, as blobs are (``gasworks.blobs.envelope``). This measures the
two ways it could be done, per message, with ``cryptography``'s AES-256-GCM:

- *row envelope*: like a blob, a fresh data key per message wrapped by the master key (two AES
  operations and a key per row; rotation re-wraps only the key);
- *tenant key*: one data key per tenant derived once (HKDF-SHA256 of the master key) and kept
  in memory; one AES operation per message (rotation re-encrypts the rows).

Anchor, measured in the same run: the write the encryption would be part of, one conversation
turn of two messages saved by ``save_conversation`` in its own transaction on the embedded
default (SQLite), and the read of a 20-message history by ``load_conversation``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import median_us, record
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SIZES = (200, 2000)


def _row_envelope(master: bytes, text: bytes, aad: bytes) -> tuple[Any, Any]:
    wrapper = AESGCM(master)

    def seal() -> tuple[bytes, bytes]:
        dk = AESGCM.generate_key(256)
        n1, n2 = os.urandom(12), os.urandom(12)
        return n1 + wrapper.encrypt(n1, dk, aad), n2 + AESGCM(dk).encrypt(n2, text, aad)

    wk, ct = seal()

    def open_() -> bytes:
        dk = wrapper.decrypt(wk[:12], wk[12:], aad)
        return AESGCM(dk).decrypt(ct[:12], ct[12:], aad)

    return seal, open_


def _tenant_key(master: bytes, text: bytes, aad: bytes) -> tuple[Any, Any]:
    key = HKDF(hashes.SHA256(), 32, salt=None, info=b"gw-rows|tenant").derive(master)
    aes = AESGCM(key)

    def seal() -> bytes:
        n = os.urandom(12)
        return n + aes.encrypt(n, text, aad)

    ct = seal()

    def open_() -> bytes:
        return aes.decrypt(ct[:12], ct[12:], aad)

    return seal, open_


ROUNDS = 7


def crypto_cases() -> list[tuple[str, int, Any, Any]]:
    """(scheme, message bytes, seal, open) for each scheme and size."""
    master = AESGCM.generate_key(256)
    aad = b"ten_x|cnv_y|42"
    out = []
    for name, make in (("row envelope", _row_envelope), ("tenant key", _tenant_key)):
        for size in SIZES:
            seal, open_ = make(master, os.urandom(size), aad)
            out.append((name, size, seal, open_))
    return out


def _seconds_per_call(fn: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


async def measure(home: Path) -> tuple[list[tuple[str, int, float, float, float, float]], str]:
    """Per crypto case: (scheme, bytes, seal µs, open µs, seal / write share, open / read
    share), each a median over ``ROUNDS`` rounds; in every round the anchor (a saved turn, a
    loaded history) is timed and then every case, so a share is the median of per-round
    ratios (load moves both sides alike). Also the anchor line."""
    from gasworks.modeltypes import Message
    from gasworks.runtime import Runtime
    from gasworks.settings import Settings
    from gasworks.tenancy import service as tenancy
    from gasworks.workflows import service
    from gasworks.workflows.ports import ConversationData

    cases = crypto_cases()
    rt = Runtime(Settings(home=home, log_level="WARNING"))
    await rt.start()
    try:
        async with rt.db.session() as s:
            tenant, _ = await tenancy.bootstrap(s, "default")
        text = "x" * 200
        conv = ConversationData(id="bench")
        turn = 0

        async def save() -> None:
            nonlocal turn
            conv.turn = turn
            conv.pending = [Message("user", text), Message("assistant", text)]
            async with rt.db.session() as s:
                await service.save_conversation(s, tenant.id, "wf", conv)
            turn += 1

        async def load() -> None:
            async with rt.db.session() as s:
                await service.load_conversation(s, tenant.id, "bench", window=20)

        async def timed(fn: Any, n: int) -> float:
            t0 = time.perf_counter()
            for _ in range(n):
                await fn()
            return (time.perf_counter() - t0) / n

        await save()
        await load()
        load0 = os.getloadavg()[0]
        writes: list[float] = []
        reads: list[float] = []
        per_case: list[tuple[list[float], list[float]]] = [([], []) for _ in cases]
        for _ in range(ROUNDS):
            writes.append(await timed(save, 50) / 2)  # per message of a 2-message turn
            reads.append(await timed(load, 200) / 20)  # per message of a 20-message window
            for (_, _, seal, open_), (seals, opens) in zip(cases, per_case, strict=True):
                seals.append(_seconds_per_call(seal, 5000))
                opens.append(_seconds_per_call(open_, 5000))
        load1 = os.getloadavg()[0]
    finally:
        await rt.stop()
    rows = []
    for (name, size, _, _), (seals, opens) in zip(cases, per_case, strict=True):
        seal_share = statistics.median(x / w for x, w in zip(seals, writes, strict=True))
        open_share = statistics.median(x / r for x, r in zip(opens, reads, strict=True))
        rows.append((name, size, median_us(seals), median_us(opens), seal_share, open_share))
    anchor = (
        f"Anchor: {median_us(writes):.0f} µs per message written (save_conversation), "
        f"{median_us(reads):.1f} µs per message read (load_conversation, 20-message window); "
        f"load average {load0:.1f} → {load1:.1f} on {os.cpu_count()} cores (a shared VM: "
        "absolute figures move with it; the shares, per-round ratios, move less)."
    )
    return rows, anchor


def main() -> str:
    with tempfile.TemporaryDirectory() as d:
        rows, anchor = asyncio.run(measure(Path(d) / "home"))
    lines = [
        "Encrypting a conversation message at rest, AES-256-GCM (`cryptography`). "
        f"{ROUNDS} rounds;",
        "each round times the anchor (the same message's share of a saved turn of 2 messages in",
        "one transaction, and of a loaded 20-message history, embedded SQLite) and then every",
        "scheme, so the shares are medians of per-round ratios (interleaved, one process).",
        "",
        "| scheme | message bytes | seal µs | open µs | seal / write share | open / read share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, size, seal_us, open_us, seal_share, open_share in rows:
        lines.append(
            f"| {name} | {size} | {seal_us:.1f} | {open_us:.1f} | "
            f"{seal_share:.1%} | {open_share:.1%} |"
        )
    lines += ["", anchor]
    return record("at_rest", "\n".join(lines))


if __name__ == "__main__":
    print(main())
