"""The type of an upload, from its bytes (``filetype`` magic numbers), never from its name.

Binary formats are recognised by their signature; a ZIP is a DOCX only if it holds
``word/document.xml``. Text has no signature: bytes that decode as UTF-8 without control
characters are text, and then HTML (by its markup), JSON (by parsing), or by the name's
extension among the text types (Markdown, CSV, plain text). Anything else is refused.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import PurePath

import filetype

from gasworks.errors import DocumentEmpty, DocumentTypeUnsupported

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
CSV = "text/csv"
JSON = "application/json"
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"

SUPPORTED = (PDF, DOCX, HTML, MARKDOWN, TEXT, CSV, JSON, PNG, JPEG, TIFF)
IMAGES = (PNG, JPEG, TIFF)
#: bytes of the head kept for sniffing
HEAD = 8192

_TEXT_BY_EXT = {".md": MARKDOWN, ".markdown": MARKDOWN, ".csv": CSV, ".txt": TEXT}


def _is_docx(path_or_head: bytes | str) -> bool:
    try:
        with zipfile.ZipFile(
            path_or_head if isinstance(path_or_head, str) else io.BytesIO(path_or_head)
        ) as z:
            return "word/document.xml" in z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


#: a control character other than tab, line feed, form feed and carriage return: not text
#: (one regular-expression scan of the head: a Python test per character cost the upload
#: path a millisecond or more per file)
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f]")


def _text(head: bytes) -> str | None:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the head's end
            return None
        text = head[: exc.start].decode("utf-8")
    if _CONTROL.search(text):
        return None
    return text


def sniff(head: bytes, name: str, *, size: int, path: str | None = None) -> str:
    """The media type of a file whose first bytes are ``head`` (``path``: the whole file, to
    look inside a ZIP). Raises ``DOCUMENT_EMPTY`` or ``DOCUMENT_TYPE_UNSUPPORTED``."""
    if size == 0:
        raise DocumentEmpty("The file is empty.", details={"name": name})
    kind = filetype.guess(head)
    if kind is not None:
        mime = str(kind.mime)
        if mime == PDF or mime in IMAGES:
            return mime
        if mime == DOCX or (mime == "application/zip" and _is_docx(path or head)):
            return DOCX
        raise DocumentTypeUnsupported(
            f"Files of type {mime} are not supported.",
            details={"name": name, "detected": mime, "supported": list(SUPPORTED)},
        )
    text = _text(head)
    if text is None:
        raise DocumentTypeUnsupported(
            "The file is neither a supported binary format nor UTF-8 text.",
            details={"name": name, "supported": list(SUPPORTED)},
        )
    start = text.lstrip()[:200].lower()
    if start.startswith(("<!doctype html", "<html")) or "<body" in text[:2000].lower():
        return HTML
    ext = PurePath(name).suffix.lower()
    if ext == ".json" or start.startswith(("{", "[")):
        if size <= len(head):
            try:
                json.loads(text)
                return JSON
            except ValueError:
                pass
        elif ext == ".json":
            return JSON
    return _TEXT_BY_EXT.get(ext, TEXT)
