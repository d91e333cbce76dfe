"""Tiny documents made at test time: PDFs with a text layer, encrypted, truncated; a DOCX and a
DOCX bomb; Markdown and HTML."""

from __future__ import annotations

import io
import zipfile


def pdf(*pages: str) -> bytes:
    """A valid PDF with one text line per page (Helvetica), xref computed."""
    return pdf_lines([[text] for text in pages])


def pdf_lines(pages: list[list[str]], size: int = 12) -> bytes:
    """A valid PDF with a text layer: each page's lines in Helvetica ``size`` at 1.2 leading,
    xref computed (also the benchmark corpus's PDFs)."""
    objs: list[bytes] = []
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    font = 3 + 2 * n
    for i, lines in enumerate(pages):
        content = 4 + 2 * i
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>".encode()
        )
        ops = [f"BT /F1 {size} Tf {size * 1.2:g} TL 72 720 Td"]
        for line in lines:
            safe = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({safe}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    )
    return out.getvalue()


def encrypted_pdf(text: str = "secret page") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(pdf(text))).pages:
        writer.add_page(page)
    writer.encrypt(user_password="pw", owner_password="owner", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def truncated_pdf() -> bytes:
    whole = pdf("this file is cut in half and has no xref")
    return whole[: len(whole) // 3]


def docx(*paragraphs: tuple[str, str]) -> bytes:
    import docx as python_docx

    d = python_docx.Document()
    for style, text in paragraphs:
        if style.startswith("Heading"):
            d.add_heading(text, level=int(style.split()[-1]))
        else:
            d.add_paragraph(text)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def docx_bomb() -> bytes:
    """A ZIP that looks like a DOCX and inflates ~10 MB of zeros from a few KB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
        z.writestr("word/media/zeros.bin", b"\0" * 10_000_000)
    return buf.getvalue()


MARKDOWN = b"""# Invoices

Invoices are paid within thirty days of receipt.

## Refunds

Refunds go back to the original card within five business days.
"""

HTML = b"""<!doctype html><html><head><title>Shipping</title></head><body>
<nav>Home | About | Contact</nav>
<article><h1>Shipping policy</h1>
<p>Parcels leave the warehouse within two days of the order being placed by the customer.</p>
<h2>Returns</h2>
<p>Returns are accepted for sixty days when the item is unused and in its original box.</p>
</article><footer>(c) shop</footer></body></html>"""
