"""The report's Chinese font: a TrueType CJK font embedded in the PDF when one is configured or found, else STSong-Light.

ReportLab embeds TrueType outlines only; the Noto CJK collections most Linux systems ship are
OpenType/CFF, which it refuses, so each candidate is tried and the first that loads wins. STSong-Light
is one of the CID fonts every PDF reader has (Adobe's Asian font pack); it needs no file.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont, TTFError

log = logging.getLogger("banjie.reports")

FALLBACK = "STSong-Light"
KNOWN_PATHS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansSC-Regular.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:/Windows/Fonts/simhei.ttf",
    "C:/Windows/Fonts/simsun.ttc",
)


def _system_fonts() -> list[str]:
    """Files fontconfig knows for Chinese, TrueType-looking ones only."""
    if shutil.which("fc-list") is None:
        return []
    try:
        listing = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    files = {line.split(":")[0].strip() for line in listing.splitlines()}
    return sorted(f for f in files if f.lower().endswith((".ttf", ".ttc")))


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
