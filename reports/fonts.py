"""The report's Chinese font: a TrueType CJK font embedded in the PDF when one is configured or found, else STSong-Light.

ReportLab embeds TrueType outlines only; the Noto CJK collections most Linux systems ship are
OpenType/CFF, which it refuses, so each candidate is tried and the first that loads wins. STSong-Light
is one of the CID fonts every PDF reader has (Adobe's Asian font pack); it needs no file.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont, TTFError

from tickets.fonts import KNOWN_PATHS, system_fonts

log = logging.getLogger("banjie.reports")

FALLBACK = "STSong-Light"


_make_to_unicode_cmap = ttfonts.makeToUnicodeCMap


def _to_unicode_cmap(fontname, subset) -> str:
    """ReportLab's ToUnicode map of an embedded subset, each character spelt in UTF-16BE as the PDF standard asks
    (ISO 32000-1, 9.10.3). ReportLab 5 writes a character above U+FFFF as its bare code point (<1044E>), which
    readers cannot decode: a character the page drew was missing from its copied and extracted text."""
    cmap = _make_to_unicode_cmap(fontname, subset)
    for index, code in enumerate(subset):
        if code > 0xFFFF:
            cmap = cmap.replace(f"<{index:02X}> <{code:04X}>", f"<{index:02X}> <{chr(code).encode('utf-16-be').hex().upper()}>")
    return cmap


ttfonts.makeToUnicodeCMap = _to_unicode_cmap  # read by name when a document's fonts are written


def _system_fonts() -> list[str]:
    """The system's Chinese fonts that look TrueType (ReportLab cannot embed the others)."""
    return [f for f in system_fonts() if f.lower().endswith((".ttf", ".ttc"))]


def _load(path: str) -> TTFont | None:
    """The font (a collection's first face), or None when missing or not embeddable (CFF outlines)."""
    try:
        return TTFont(f"Banjie-{Path(path).stem}", path, subfontIndex=0)
    except (TTFError, OSError, ValueError):
        return None


@lru_cache(maxsize=8)
def register(configured: str = "") -> str:
    """Register and return the font name to draw Chinese with."""
    candidates = ([configured] if configured else []) + list(KNOWN_PATHS) + _system_fonts()
    for path in candidates:
        font = _load(path)
        if font is not None:
            pdfmetrics.registerFont(font)
            return font.fontName
        if path == configured:
            log.warning("REPORT_FONT %s is not a TrueType font ReportLab can embed; looking for another", path)
    pdfmetrics.registerFont(UnicodeCIDFont(FALLBACK))
    return FALLBACK
