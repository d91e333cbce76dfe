"""CSV (one block per row, ``column: value`` lines) and JSON (one block per top-level item)."""

from __future__ import annotations

import csv
import io
import json

from gasworks.documents.extractors.text import decode
from gasworks.documents.extractors.types import Block, Extracted
from gasworks.errors import DocumentCorrupt


def extract_csv(data: bytes) -> Extracted:
    try:
        rows = list(csv.reader(io.StringIO(decode(data))))
    except csv.Error as exc:
        raise DocumentCorrupt(
            "The CSV file cannot be parsed.", details={"error": str(exc)}
        ) from exc
    if not rows:
        return Extracted()
    header, body = rows[0], rows[1:]
    blocks = [
        Block("\n".join(f"{h}: {v}" for h, v in zip(header, row, strict=False) if v))
        for row in body
        if any(row)
    ]
    return Extracted(blocks=[b for b in blocks if b.text])


def extract_json(data: bytes) -> Extracted:
    try:
        doc = json.loads(decode(data))
    except ValueError as exc:
        raise DocumentCorrupt("The JSON file cannot be parsed.") from exc
    items = doc if isinstance(doc, list) else [doc]
    blocks = []
    for item in items:
        text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False, indent=1)
        if text.strip():
            blocks.append(Block(text))
    return Extracted(blocks=blocks)
