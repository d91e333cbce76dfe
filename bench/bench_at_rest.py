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
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import median_us, per_call, per_call_async, record
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


def crypto_rows() -> list[tuple[str, int, float, float]]:
    master = AESGCM.generate_key(256)
    aad = b"ten_x|cnv_y|42"
    out = []
    for name, make in (("row envelope", _row_envelope), ("tenant key", _tenant_key)):
        for size in SIZES:
            seal, open_ = make(master, os.urandom(size), aad)
            out.append(
                (
                    name,
                    size,
                    median_us(per_call(seal, n=5000)),
                    median_us(per_call(open_, n=5000)),
                )
            )
    return out


async def anchor(home: Path) -> tuple[float, float]:
    """(µs per message of a saved turn, µs per message of a loaded 20-message history)."""
    from gasworks.modeltypes import Message
    from gasworks.runtime import Runtime
    from gasworks.settings import Settings
    from gasworks.tenancy import service as tenancy
    from gasworks.workflows import service
    from gasworks.workflows.ports import ConversationData

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

        write = await per_call_async(save, n=50)

        async def load() -> None:
            async with rt.db.session() as s:
                await service.load_conversation(s, tenant.id, "bench", window=20)

        read = await per_call_async(load, n=200)
        return median_us(write) / 2, median_us(read) / 20
    finally:
        await rt.stop()


def main() -> str:
    rows = crypto_rows()
    with tempfile.TemporaryDirectory() as d:
        write_us, read_us = asyncio.run(anchor(Path(d) / "home"))
    lines = [
        "Encrypting a conversation message at rest, AES-256-GCM (`cryptography`), medians of 7",
        "rounds. Anchor: the same message's share of a saved turn (2 messages, one transaction)",
        "and of a loaded 20-message history, embedded SQLite, same run.",
        "",
        "| scheme | message bytes | seal µs | open µs | seal / write share | open / read share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, size, seal_us, open_us in rows:
        lines.append(
            f"| {name} | {size} | {seal_us:.1f} | {open_us:.1f} | "
            f"{seal_us / write_us:.1%} | {open_us / read_us:.1%} |"
        )
    lines += [
        "",
        f"Anchor: {write_us:.0f} µs per message written (save_conversation), "
        f"{read_us:.1f} µs per message read (load_conversation, 20-message window).",
        "",
        "Load average during the run: {:.1f} / {:.1f} / {:.1f} (a shared 2-core VM: absolute "
        "figures move with it; the shares, measured in the same run, move less).".format(
            *os.getloadavg()
        ),
    ]
    return record("at_rest", "\n".join(lines))


if __name__ == "__main__":
    print(main())
