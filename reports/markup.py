"""Text into ReportLab paragraphs, safely: every dynamic string escaped, and no paragraph able to load anything.

ReportLab reads a Paragraph's text as markup: `<b>` in a department's name breaks the report, and
`<img src="/etc/passwd"/>` or `<img src="http://...">` in a citizen's service item makes it open that
file or fetch that URL. Two independent layers stop that:

1. Every dynamic string reaches a paragraph through `text()` or `markup()`, which escape it (and drop
   the control characters that have no business in a report).
2. The paragraphs those make parse with `ResourceFreeParser`, which accepts only the few formatting tags
   the report itself writes and refuses any other tag or attribute (`<img>`, `<a href>`, a font named by
   file, ...) with `RefusedMarkup`; and ReportLab's own URL reader trusts no host and no scheme. So a
   string that some day slips past layer 1 can break a report, but never read a file or a URL.

Nothing in the reports room builds a `reportlab.platypus.Paragraph` itself (a test checks).
"""
from __future__ import annotations

import re
from xml.sax.saxutils import escape as xml_escape

from reportlab import rl_config
from reportlab.platypus import Paragraph
from reportlab.platypus.paragraph import textTransformFrags
from reportlab.platypus.paraparser import ParaParser

from . import fonts

# ReportLab reads these at every fetch (`reportlab.lib.utils.rlUrlRead`): no host and no scheme is
# trusted, whatever RL_trustedHosts says in the environment. Report markup never needs a URL.
rl_config.trustedHosts = None
rl_config.trustedSchemes = []

# The markup the report's own templates use; the values are what each attribute may hold. `<font name>` is written by
# `escape` around a character the paragraph's font has no glyph for, naming a font `reports.fonts` registered (no other).
ALLOWED_TAGS = {"para": set(), "b": set(), "i": set(), "u": set(), "br": set(), "font": {"size", "color", "name"}}
# Control characters other than tab and newlines (C0, DEL, C1), and the two non-characters XML forbids.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


class RefusedMarkup(ValueError):
    """Markup outside what the report writes reached a paragraph: a string was not escaped."""


def plain(value, font: str | None = None) -> str:
    """A value as text drawn directly (a table cell, the footer, the PDF's metadata): control characters dropped; with
    the `font` it is drawn in, each character that font lacks shown as 〓 (`reports.fonts.drawable`)."""
    value = CONTROL.sub("", str(value))
    return value if font is None else fonts.drawable(value, font)


def escape(value, font: str | None = None) -> str:
    """A value as paragraph text that reads exactly as written: `&`, `<`, `>` escaped, control characters dropped; with
    the paragraph's `font`, each character it lacks drawn in a font that has it, or as 〓 (`reports.fonts.runs`)."""
    value = plain(value)
    if font is None:
        return xml_escape(value)
    return "".join(xml_escape(run) if face is None else f'<font name="{face}">{xml_escape(run)}</font>'
                   for run, face in fonts.runs(value, font))


class ResourceFreeParser(ParaParser):
    """ReportLab's paragraph parser, limited to the formatting tags of `ALLOWED_TAGS`.

    `<img>` would open its `src` as a file or URL, `<font face>` looks a font file up by name,
    `<a href>` writes a link into the PDF: none of them, nor any other tag, is let through.
    """

    def handle_starttag(self, tag, attrs):
        allowed = ALLOWED_TAGS.get(tag.lower())
        pairs = list(attrs.items() if isinstance(attrs, dict) else attrs)
        names = {name.lower() for name, _value in pairs}
        if allowed is None or not names <= allowed:
            raise RefusedMarkup(f"<{tag}> with {sorted(names)} is not allowed in report text")
        face = next((value for name, value in pairs if name.lower() == "name"), None)
        if face is not None and face not in fonts.fallback_names():
            raise RefusedMarkup(f"<{tag} name={face!r}> names a font the report did not register")
        super().handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag.lower() not in ALLOWED_TAGS:
            raise RefusedMarkup(f"</{tag}> is not allowed in report text")
        super().handle_endtag(tag)


class SafeParagraph(Paragraph):
    """A Paragraph whose markup is parsed by `ResourceFreeParser`.

    `Paragraph._setup` builds its parser inline; this is that method with the parser swapped (the
    split halves of a paragraph are built from fragments, so they never parse again).
    """

    def _setup(self, text, style, bulletText, frags, cleaner):
        if frags is None:
            text = cleaner(text)
            parser = ResourceFreeParser()
            parser.caseSensitive = self.caseSensitive
            style, frags, bullet_frags = parser.parse(text, style)
            if frags is None:
                raise ValueError(f"paragraph markup error ({parser.errors[0]}) in {text[:30]!r}")
            textTransformFrags(frags, style)
            if bullet_frags:
                bulletText = bullet_frags
        super()._setup(text, style, bulletText, frags, cleaner)


def text(value, style) -> SafeParagraph:
    """A paragraph showing `value` (any string: a name, a service item, a translated label) as written."""
    return SafeParagraph(escape(value, style.fontName), style)


def markup(template: str, style, **values) -> SafeParagraph:
    """A paragraph of the report's own markup `template`, with `values` escaped into its `%(name)s` slots."""
    return SafeParagraph(template % {key: escape(value, style.fontName) for key, value in values.items()}, style)


def lines(value, style) -> SafeParagraph:
    """Free text (a description, a note, a text message) with its line breaks kept, every line escaped; "—" if empty."""
    return SafeParagraph("<br/>".join(escape(line, style.fontName) for line in str(value).splitlines()) or "—", style)
