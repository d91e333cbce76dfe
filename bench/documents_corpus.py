"""The ingestion benchmark's corpus, generated deterministically (same seed, same bytes).

Four kinds of file, in a fixed rotation (scanned PDFs spread evenly among the others when
asked for): PDFs with a text layer (2-3 pages of prose, one line
per 90 characters, Helvetica), HTML pages (a navigation bar and a footer around an article
with headings and paragraphs: the boilerplate an extractor must drop), Markdown notes with
headings, and scanned PDFs (the page is an image of the text, no text layer: only OCR reads
it). The prose is English-like sentences drawn from a fixed vocabulary, so the token counts
are those of ordinary text (about 1.1 WordPiece tokens per ``cl100k_base`` token).

No file of the corpus is committed: ``write_corpus`` makes it in a directory, byte-identical on
every run (PDFs carry no dates; the scanned pages are drawn with Pillow's bundled font).
"""

from __future__ import annotations

import io
import random
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.documents.samples import pdf_lines


def _words(text: str) -> list[str]:
    return text.split()


WORDS = _words("""
account action address agreement amount answer approval archive audit balance bank batch
billing board budget buyer calendar capacity carrier case catalog change charge claim client
closing code company complaint contract control cost credit currency customer cycle data date
deadline delivery department deposit detail device discount dispute document draft due engineer
entry error estimate event exception expense export facility fee field file filing finance fleet
form freight fund grant guarantee handling holder inbox income index invoice issue item journal
label ledger level license limit line loan location log manager margin market member method
meter notice number office operator order owner package partner payment payroll period permit
plan policy portal price process product project purchase quarter quote rate receipt record
refund region register release renewal report request reserve return review risk route rule
schedule scope sector service shipment signature site source staff standard statement status
stock storage supplier supply support system tariff tax team term ticket total trade transfer
unit update usage user value vendor version volume warehouse warranty week window worker year
""")
VERBS = _words("""
approves checks closes collects confirms covers creates defines delivers describes files
follows handles includes keeps lists matches moves needs notes opens pays places posts prepares
receives records reduces replaces reports requires reviews sends sets ships shows signs starts
stores tracks updates uses validates
""")
GLUE = _words("the a each every this that its our their any")
ADJ = _words("""
annual current daily early final first full general internal late local main monthly new
normal open partial past pending primary prior regional regular second special standard total
urgent weekly
""")


@dataclass(frozen=True, slots=True)
class CorpusFile:
    name: str
    kind: str  # pdf | html | md | scan
    data: bytes
    #: the text the file carries (for an edit, and for counting)
    words: int


def _sentence(rng: random.Random) -> str:
    n = rng.randint(7, 18)
    out = [rng.choice(GLUE), rng.choice(ADJ), rng.choice(WORDS), rng.choice(VERBS)]
    while len(out) < n:
        r = rng.random()
        if r < 0.2:
            out.append(rng.choice(GLUE))
        elif r < 0.35:
            out.append(rng.choice(ADJ))
        elif r < 0.45:
            out.append(str(rng.randint(2, 999)))
        else:
            out.append(rng.choice(WORDS))
    text = " ".join(out)
    return text[0].upper() + text[1:] + rng.choice(".....?!")


def paragraph(rng: random.Random, sentences: tuple[int, int] = (3, 6)) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(*sentences)))


def _title(rng: random.Random) -> str:
    return f"{rng.choice(ADJ).title()} {rng.choice(WORDS)} {rng.choice(WORDS)}"


def _wrap(text: str, width: int = 90) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A valid PDF with a text layer: each page's lines at 12 pt leading (Helvetica 10)."""
    return pdf_lines(pages, size=10)


def scanned_pdf_bytes(lines: list[str]) -> bytes:
    """One page that is only an image of ``lines`` (150 dpi, as tall as the text, no text
    layer: a scanned letter or receipt)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("L", (1275, 200 + 34 * len(lines)), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=24)
    y = 100
    for line in lines:
        draw.text((90, y), line, fill=0, font=font)
        y += 34
    buf = io.BytesIO()
    img.save(buf, format="PDF", resolution=150.0)
    return buf.getvalue()


def _pdf(rng: random.Random, i: int) -> CorpusFile:
    pages: list[list[str]] = []
    words = 0
    for _ in range(rng.randint(2, 3)):
        text = " ".join(paragraph(rng) for _ in range(rng.randint(3, 4)))
        words += len(text.split())
        pages.append(_wrap(text))
    return CorpusFile(f"report-{i:04d}.pdf", "pdf", pdf_bytes(pages), words)


def _html(rng: random.Random, i: int) -> CorpusFile:
    title = _title(rng)
    parts = [f"<h1>{title}</h1>"]
    words = 0
    for _ in range(rng.randint(2, 4)):
        parts.append(f"<h2>{_title(rng)}</h2>")
        for _ in range(rng.randint(1, 3)):
            p = paragraph(rng)
            words += len(p.split())
            parts.append(f"<p>{p}</p>")
    body = "\n".join(parts)
    page = (
        f"<!doctype html><html><head><title>{title}</title></head><body>\n"
        '<nav><a href="/">Home</a> | <a href="/help">Help</a> | <a href="/contact">Contact</a>'
        f"</nav>\n<article>\n{body}\n</article>\n<footer>(c) Example Corp, all rights reserved"
        "</footer></body></html>\n"
    )
    return CorpusFile(f"page-{i:04d}.html", "html", page.encode(), words)


def _md(rng: random.Random, i: int) -> CorpusFile:
    parts = [f"# {_title(rng)}", ""]
    words = 0
    for _ in range(rng.randint(2, 4)):
        parts += [f"## {_title(rng)}", ""]
        for _ in range(rng.randint(1, 3)):
            p = paragraph(rng)
            words += len(p.split())
            parts += [p, ""]
    return CorpusFile(f"note-{i:04d}.md", "md", "\n".join(parts).encode(), words)


def _scan(rng: random.Random, i: int) -> CorpusFile:
    text = " ".join(paragraph(rng, (2, 3)) for _ in range(2))
    lines = _wrap(text, 80)[:40]
    return CorpusFile(
        f"scan-{i:04d}.pdf", "scan", scanned_pdf_bytes(lines), len(" ".join(lines).split())
    )


MAKERS = {"pdf": _pdf, "html": _html, "md": _md, "scan": _scan}


def corpus(
    n: int, *, kinds: tuple[str, ...] = ("pdf", "html", "md"), seed: int = 13, scans: int = 0
) -> list[CorpusFile]:
    """``n`` files of ``kinds`` in rotation, of which ``scans`` (spread evenly) are scanned
    PDFs instead; the i-th file depends only on (seed, kind, i)."""
    step = n // scans if scans else 0
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if step and i % step == step - 1 and i // step < scans:
            kind = "scan"
        rng = random.Random(f"{seed}:{kind}:{i}")
        out.append(MAKERS[kind](rng, i))
    return out


def edited(f: CorpusFile, seed: int = 99) -> CorpusFile:
    """The same file with one paragraph appended (an edit): Markdown and HTML only."""
    rng = random.Random(f"{seed}:{f.name}")
    extra = paragraph(rng)
    if f.kind == "md":
        data = f.data + f"\n## Amendment\n\n{extra}\n".encode()
    elif f.kind == "html":
        data = f.data.replace(b"</article>", f"<p>{extra}</p>\n</article>".encode())
    else:
        raise ValueError(f"no edit for {f.kind}")
    return CorpusFile(f.name, f.kind, data, f.words + len(extra.split()))


def write_corpus(files: list[CorpusFile], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in files:
        p = folder / f.name
        p.write_bytes(f.data)
        paths.append(p)
    return paths
