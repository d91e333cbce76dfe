"""RapidOCR (``rapidocr-onnxruntime``): its detection and recognition models ship in the
package, so nothing is downloaded. Runs inside the sandbox child."""

from __future__ import annotations

from typing import Any

from gasworks.documents.ocr.render import page_images
from gasworks.errors import MissingDependency


def ocr_pages(data: bytes, media_type: str, pages: list[int]) -> dict[str, Any]:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:
        raise MissingDependency(
            "OCR needs the 'ocr' extra: pip install 'gasworks[ocr]'.",
            details={"extra": "ocr"},
        ) from exc
    engine = RapidOCR()
    out: dict[str, str] = {}
    for number, png in page_images(data, media_type, pages):
        result, _ = engine(png)
        out[str(number)] = "\n".join(str(line[1]) for line in (result or []))
    return out
