"""Page images for OCR: PDF pages rendered with ``pypdfium2``; an image file is its own page."""

from __future__ import annotations

import io
from collections.abc import Iterator

from gasworks.documents import sniff

#: render scale (72 dpi * 2.5 = 180 dpi: small print stays readable)
SCALE = 2.5


def page_images(data: bytes, media_type: str, pages: list[int]) -> Iterator[tuple[int, bytes]]:
    if media_type in sniff.IMAGES:
        yield 0, data
        return
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        for number in pages:
            bitmap = pdf[number - 1].render(scale=SCALE)
            buf = io.BytesIO()
            bitmap.to_pil().save(buf, format="PNG")
            yield number, buf.getvalue()
    finally:
        pdf.close()
