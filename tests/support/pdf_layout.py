"""How much of a PDF page is used, read back from the file the way a printer would lay it out."""

from __future__ import annotations


def page_use(page) -> float:
    """The share of a pypdf page's height that is used: from the top down to its lowest text
    baseline or image (1.0 is full to the bottom edge, 0.1 a few lines at the top)."""
    from pypdf.generic import ContentStream

    lowest: list[float] = []
    page.extract_text(visitor_text=lambda text, cm, tm, *_: lowest.append(tm[5]) if text.strip() else None)
    matrix = None
    for operands, operator in ContentStream(page.get_contents(), page.pdf).operations:
        if operator == b"cm":
            matrix = [float(v) for v in operands]
        elif operator == b"Do" and matrix:
            lowest.append(matrix[5])  # an image's bottom edge
    height = float(page.mediabox.height)
    return (height - min(lowest)) / height if lowest else 0.0
