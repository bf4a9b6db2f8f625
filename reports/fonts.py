"""The report's Chinese font: a TrueType CJK font embedded in the PDF when one is configured or found, else STSong-Light.

ReportLab embeds TrueType outlines only; the Noto CJK collections most Linux systems ship are
OpenType/CFF, which it refuses, so each candidate is tried and the first that loads wins. STSong-Light
is one of the CID fonts every PDF reader has (Adobe's Asian font pack); it needs no file.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import unicodedata
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
    """The font (a collection's first face), or None when missing or not embeddable (CFF outlines). Its name is made of
    the file's, in letters, digits, `.`, `_` and `-` only: a paragraph's markup names a fallback font (`runs`)."""
    try:
        return TTFont(f"Banjie-{re.sub(r'[^A-Za-z0-9._-]', '_', Path(path).stem)}", path, subfontIndex=0)
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


# --- characters the report font has no glyph for -------------------------------------------------------------------
# A citizen writing from a phone uses emoji (😡), a name may hold a rare character (CJK Extension B, 𠀀); the CJK font
# draws neither, and ReportLab then draws a blank: the reader never learns a character was there. Each such character
# is drawn with another font of this machine that has it (fontconfig finds one: DejaVu Sans draws many symbols and
# emoji, in outline) and, where none has it, as 〓, the mark Chinese typesetting prints for a character it lacks.

PLACEHOLDER = "〓"


@lru_cache(maxsize=16)
def glyphs(font: str) -> frozenset[int] | None:
    """The code points the registered `font` has a glyph for; None when not known (a CID font: it draws its set)."""
    face = getattr(pdfmetrics.getFont(font), "face", None)
    cmap = getattr(face, "charToGlyph", None)
    return None if cmap is None else frozenset(code for code, glyph in cmap.items() if glyph)


# Characters whose best font on this machine is asked of fontconfig once per process (`fc-match`): an emoji, a symbol,
# a CJK Extension B character. Each font found this way draws whatever it has, not only its probe.
PROBES = (0x1F600, 0x2603, 0x20000)


def _best_font_with(code: int) -> str | None:
    """The TrueType file fontconfig picks for the character `code` (its best match, which may lack it; None without
    fontconfig)."""
    if shutil.which("fc-match") is None:
        return None
    try:
        done = subprocess.run(["fc-match", "-f", "%{file}", f":charset={code:x}"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    path = done.stdout.strip()
    return path if done.returncode == 0 and path.lower().endswith((".ttf", ".ttc")) else None


@lru_cache(maxsize=1)
def _fallbacks() -> tuple[tuple[str, frozenset[int]], ...]:
    """The fonts `fallback` draws with, registered, each with its code points: found once, so that text full of
    characters no font has costs no more than any other."""
    found: list[tuple[str, frozenset[int]]] = []
    read: dict[str, TTFont | None] = {}  # one file is often the best for several probes: parsed once
    for code in PROBES:
        path = _best_font_with(code)
        if path and path not in read:
            read[path] = _load(path)
        font = read.get(path)
        if font is None or not font.face.charToGlyph.get(code) or any(name == font.fontName for name, _ in found):
            continue
        pdfmetrics.registerFont(font)
        found.append((font.fontName, frozenset(c for c, glyph in font.face.charToGlyph.items() if glyph)))
    return tuple(found)


def fallback(code: int) -> str | None:
    """The registered name of a font that draws the character `code` (the report font does not), or None."""
    return next((name for name, have in _fallbacks() if code in have), None)


def fallback_names() -> frozenset[str]:
    """The fonts `runs` may name: the only values a paragraph's `<font name>` may hold (`reports.markup`)."""
    return frozenset(name for name, _ in _fallbacks())


def _invisible(char: str) -> bool:
    """A character with no form of its own (a joiner, a variation selector asking for the emoji style): when no font
    here has it, it is left out rather than marked."""
    code = ord(char)
    return unicodedata.category(char) == "Cf" or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def _mark(have: frozenset[int]) -> str:
    """What marks a missing character in a font with the glyphs `have`: 〓, or ? in a font without it."""
    return PLACEHOLDER if ord(PLACEHOLDER) in have else "?"


def runs(value: str, font: str) -> list[tuple[str, str | None]]:
    """`value` cut into runs of (text, font to draw it with: None for `font` itself). A character `font` lacks is drawn
    with a font that has it (`fallback`), else as `PLACEHOLDER` in `font` (left out when `_invisible`); whitespace is
    layout and kept as it is."""
    have = glyphs(font)
    if have is None:
        return [(value, None)] if value else []
    mark = _mark(have)
    drawn: list[tuple[str, str | None]] = []
    for char in value:
        face = None
        if not (ord(char) in have or char.isspace()):
            face = fallback(ord(char))
            if face is None:
                if _invisible(char):
                    continue
                char = mark
        if drawn and drawn[-1][1] == face:
            drawn[-1] = (drawn[-1][0] + char, face)
        else:
            drawn.append((char, face))
    return drawn


def drawable(value: str, font: str) -> str:
    """`value` as the one font `font` draws it (a footer, a chart's label: no second font there): each character it
    lacks as `PLACEHOLDER` (left out when `_invisible`), whitespace kept."""
    have = glyphs(font)
    if have is None:
        return value
    mark = _mark(have)
    return "".join(c if ord(c) in have or c.isspace() else "" if _invisible(c) else mark for c in value)
