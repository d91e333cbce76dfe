"""PDF text layers (``pypdf``), one block per page; pages without text are marked for OCR."""

from __future__ import annotations

import io

from gasworks.documents.extractors.types import Block, Extracted
from gasworks.errors import DocumentCorrupt, DocumentEncrypted, ExtractionLimitExceeded

#: a page with fewer characters than this has no usable text layer (scanned)
MIN_PAGE_CHARS = 16


def extract(data: bytes) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentEncrypted("The PDF is password-protected; upload an unprotected copy.")
        out = Extracted(pages=len(reader.pages))
        for number, page in enumerate(reader.pages, 1):
            text = (page.extract_text() or "").strip()
            if len(text) < MIN_PAGE_CHARS:
                out.ocr_pages.append(number)
            else:
                out.blocks.append(Block(text, page=number))
        return out
    except (DocumentEncrypted, ExtractionLimitExceeded):
        raise
    except FileNotDecryptedError as exc:
        raise DocumentEncrypted(
            "The PDF is password-protected; upload an unprotected copy."
        ) from exc
    except LimitReachedError as exc:
        raise ExtractionLimitExceeded(
            "The PDF decompresses to more than allowed (a decompression bomb?)."
        ) from exc
    except (PdfReadError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DocumentCorrupt(
            "The PDF is truncated or malformed.", details={"error": type(exc).__name__}
        ) from exc
