"""DOCX (``python-docx``): paragraphs, with ``Heading n`` / ``Title`` styles as headings.

The ZIP container is checked first: more than ``MAX_UNZIPPED`` bytes once inflated, or a
member inflating more than ``MAX_RATIO`` times, is a decompression bomb and is not opened.
"""

from __future__ import annotations

import io
import zipfile

from gasworks.documents.extractors.types import Block, Extracted
from gasworks.errors import DocumentCorrupt, ExtractionLimitExceeded

MAX_UNZIPPED = 256 * 1024 * 1024
MAX_RATIO = 200


def check_zip(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except zipfile.BadZipFile as exc:
        raise DocumentCorrupt("The file is not a readable ZIP container.") from exc
    total = sum(i.file_size for i in infos)
    worst = max((i.file_size / max(1, i.compress_size) for i in infos), default=0)
    if total > MAX_UNZIPPED or worst > MAX_RATIO:
        raise ExtractionLimitExceeded(
            "The document inflates to far more than its size (a decompression bomb?).",
            details={"inflatedBytes": total, "worstRatio": round(worst)},
        )


def extract(data: bytes) -> Extracted:
    check_zip(data)
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many types for a malformed package
        raise DocumentCorrupt(
            "The DOCX file is malformed.", details={"error": type(exc).__name__}
        ) from exc
    out = Extracted()
    heading: str | None = None
    for para in document.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        if style.startswith("Heading") or style == "Title":
            heading = text
            continue
        out.blocks.append(Block(text, heading=heading))
    for table in document.tables:
        for row in table.rows:
            cells = " | ".join(c.text.strip() for c in row.cells if c.text.strip())
            if cells:
                out.blocks.append(Block(cells, heading=heading))
    return out
