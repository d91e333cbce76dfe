"""Markdown: ATX headings (``#`` .. ``######``) become the heading of the text under them."""

from __future__ import annotations

import re

from gasworks.documents.extractors.text import decode
from gasworks.documents.extractors.types import Block, Extracted

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def extract(data: bytes) -> Extracted:
    out = Extracted()
    heading: str | None = None
    para: list[str] = []
    in_code = False

    def flush() -> None:
        text = "\n".join(para).strip()
        if text:
            out.blocks.append(Block(text, heading=heading))
        para.clear()

    for line in decode(data).split("\n"):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        m = None if in_code else _HEADING.match(line)
        if m:
            flush()
            heading = m.group(2)
        elif not line.strip() and not in_code:
            flush()
        else:
            para.append(line)
    flush()
    return out
