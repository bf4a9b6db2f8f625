"""The citizen's receipt as a picture (「保存为图片」): the tracking number and query code, for a phone's photo album.

Drawn with Pillow in a font that has Chinese (`tickets.fonts`); the values are drawn as text, never parsed.
"""
from __future__ import annotations

import io
from datetime import datetime

from flask_babel import gettext as _
from PIL import Image, ImageDraw

from .clock import local_text
from .fonts import pillow_font

WIDTH, HEIGHT = 720, 460
INK, MUTED, BRAND, PAPER = "#1f2933", "#5f6b7a", "#b4232a", "#ffffff"


_font = pillow_font


def receipt_png(*, office: str, tracking_no: str, code: str, window: str | None, at: datetime) -> bytes:
    """A PNG of the receipt: who received it, the two codes large, when, and what to do with them."""
    image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, 12), fill=BRAND)
    y = 40
    draw.text((40, y), office, font=_font(26), fill=INK)
    y += 44
    draw.text((40, y), _("We have received your case"), font=_font(22), fill=MUTED)
    y += 56
    for label, value in ((_("Tracking number"), tracking_no), (_("Query code"), code)):
        draw.text((40, y + 10), label, font=_font(22), fill=MUTED)
        draw.text((220, y), value, font=_font(40), fill=INK)
        y += 70
    if window:
        draw.text((40, y), f"{_('Window')}：{window}", font=_font(20), fill=MUTED)
        y += 36
    draw.text((40, y), local_text(at), font=_font(20), fill=MUTED)
    draw.text((40, HEIGHT - 50), _("Keep these two codes: you need both to follow your case."), font=_font(20),
              fill=BRAND)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()
