"""What an extractor produces: blocks of text with their page and heading."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class Block:
    text: str
    page: int | None = None
    heading: str | None = None


@dataclass(slots=True)
class Extracted:
    blocks: list[Block] = field(default_factory=list)
    pages: int | None = None
    #: pages (1-based) without a text layer, to OCR; ``[0]`` means "the file is an image"
    ocr_pages: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "blocks": [asdict(b) for b in self.blocks],
            "pages": self.pages,
            "ocrPages": self.ocr_pages,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Extracted:
        return cls(
            blocks=[Block(**b) for b in d.get("blocks", [])],
            pages=d.get("pages"),
            ocr_pages=list(d.get("ocrPages", [])),
        )
