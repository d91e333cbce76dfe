"""Extractors, one module per format, chosen by the sniffed media type (one explicit table)."""

from __future__ import annotations

from collections.abc import Callable

from gasworks.documents import sniff
from gasworks.documents.extractors import docx, html, markdown, pdf, tabular, text
from gasworks.documents.extractors.types import Block, Extracted


def _image(data: bytes) -> Extracted:
    return Extracted(pages=1, ocr_pages=[0])


EXTRACTORS: dict[str, Callable[[bytes], Extracted]] = {
    sniff.PDF: pdf.extract,
    sniff.DOCX: docx.extract,
    sniff.HTML: html.extract,
    sniff.MARKDOWN: markdown.extract,
    sniff.TEXT: text.extract,
    sniff.CSV: tabular.extract_csv,
    sniff.JSON: tabular.extract_json,
    sniff.PNG: _image,
    sniff.JPEG: _image,
    sniff.TIFF: _image,
}

#: pure-Python decoding of bounded text: safe to run in the worker process itself
IN_PROCESS = frozenset({sniff.MARKDOWN, sniff.TEXT, sniff.CSV, sniff.JSON, *sniff.IMAGES})

__all__ = ["EXTRACTORS", "IN_PROCESS", "Block", "Extracted"]
