"""The demo's files (附件): pictures of the papers citizens and departments attach, drawn here with Pillow in a
font that has Chinese (`tickets.fonts`), so the repository holds no binary files and the pictures say what they are."""
from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageDraw

from tickets.attachments import Incoming
from tickets.fonts import pillow_font

PAPER, INK, RED = (250, 248, 240), (40, 40, 40), (200, 30, 30)


@dataclass(frozen=True)
class Paper:
    """A sheet of paper: its file name, title, body lines and the seal's text (a red round stamp; None: none)."""

    name: str
    title: str
    lines: tuple[str, ...]
    seal: str | None = None


_font = pillow_font


def draw(paper: Paper) -> bytes:
    """The sheet photographed: a JPEG of 900×1270 pixels."""
    image = Image.new("RGB", (900, 1270), PAPER)
    pen = ImageDraw.Draw(image)
    title = _font(44)
    width = pen.textlength(paper.title, font=title)
    pen.text(((900 - width) / 2, 90), paper.title, font=title, fill=INK)
    body, y = _font(28), 220
    for line in paper.lines:
        pen.text((90, y), line, font=body, fill=INK)
        y += 56
    if paper.seal:
        pen.ellipse((560, y + 40, 800, y + 280), outline=RED, width=8)
        seal = _font(30)
        text_width = pen.textlength(paper.seal, font=seal)
        pen.text((680 - text_width / 2, y + 140), paper.seal, font=seal, fill=RED)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def incoming(papers) -> list[Incoming]:
    """The sheets as uploads, as a phone would send them."""
    return [Incoming(paper.name, "image/jpeg", draw(paper)) for paper in papers]
