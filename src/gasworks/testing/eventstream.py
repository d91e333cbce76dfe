"""Encoder for the AWS event-stream binary framing (``application/vnd.amazon.eventstream``).

botocore ships only the decoder; the fake Bedrock server needs the other half. Frame layout:
total length (u32), headers length (u32), prelude CRC32, headers, payload, message CRC32 —
all big-endian; header values here are strings (type 7).
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any


def _crc(data: bytes, seed: int = 0) -> int:
    return zlib.crc32(data, seed) & 0xFFFFFFFF


def encode_headers(headers: dict[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        out += struct.pack(">B", len(n)) + n + struct.pack(">BH", 7, len(v)) + v
    return out


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    h = encode_headers(headers)
    total = 12 + len(h) + len(payload) + 4
    prelude = struct.pack(">II", total, len(h))
    prelude += struct.pack(">I", _crc(prelude))
    body = prelude + h + payload
    return body + struct.pack(">I", _crc(body))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    return encode_message(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        json.dumps(payload).encode(),
    )


def exception(exception_type: str, message: str) -> bytes:
    return encode_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message}).encode(),
    )
