"""HTML: the main content (``trafilatura``, boilerplate removed) as Markdown, then split by
its headings like a Markdown file."""

from __future__ import annotations

from gasworks.documents.extractors import markdown
from gasworks.documents.extractors.text import decode
from gasworks.documents.extractors.types import Extracted


def extract(data: bytes) -> Extracted:
    import trafilatura

    html = decode(data)
    text = trafilatura.extract(
        html,
        output_format="markdown",
        include_formatting=True,
        include_comments=False,
        favor_recall=True,
    )
    if not text:
        from lxml import html as lxml_html

        try:
            text = lxml_html.fromstring(html).text_content()
        except Exception:  # lxml refuses empty or hopeless markup
            text = ""
    return markdown.extract((text or "").encode())
