"""Plain text: paragraphs separated by blank lines."""

from __future__ import annotations

import re

from gasworks.documents.extractors.types import Block, Extracted

_PARAS = re.compile(r"\n\s*\n")


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n")


def extract(data: bytes) -> Extracted:
    return Extracted(blocks=[Block(p.strip()) for p in _PARAS.split(decode(data)) if p.strip()])
