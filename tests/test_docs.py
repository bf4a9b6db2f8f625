"""The documentation is the contract: every setting, command, make target and outward endpoint is written down.

Integrations and operators read the README (and the reference under docs/) rather than the code, so what the code
offers and the documentation does not name does not exist for them. These checks walk what the app and the Makefile
really have, so a new setting, command, target or route fails here until it is documented.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import click
import pytest

from app import SETTINGS, create_app

ROOT = Path(__file__).resolve().parents[1]
# Paths of the outward contract: the JSON API, Twilio's webhooks, Open311, the probes and the metrics.
OUTWARD = ("/api/", "/sms/", "/open311/", "/healthz", "/readyz", "/metrics")
# Make targets that are plumbing, not something a person runs.
PLUMBING_TARGETS = {"help"}


def documentation() -> str:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages if page.exists())


def section(text: str, heading: str) -> str:
    """The README's section under `## heading`, up to the next heading of the same level."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def commands(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        full = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            yield from commands(command, full)
        else:
            yield full


def test_every_setting_is_in_the_configuration_table():
    table = section((ROOT / "README.md").read_text(encoding="utf-8"), "Configuration")
    rows = {name for line in table.splitlines() if line.startswith("| ")
            for name in re.findall(r"[A-Z][A-Z0-9_]{2,}", line.split("|")[1])}
    assert sorted(set(SETTINGS) - rows) == []


def test_every_range_and_rate_limit_is_in_the_configuration_table():
    """The range start-up holds each number to (app.RANGES), in the setting's row, as the refusal says it."""
    from app import RANGES, RATE_LIMITS, range_text

    table = section((ROOT / "README.md").read_text(encoding="utf-8"), "Configuration")
    rows = {name: line for line in table.splitlines() if line.startswith("| ")
            for name in re.findall(r"[A-Z][A-Z0-9_]{2,}", line.split("|")[1])}
    assert [name for name in RANGES if range_text(name) not in rows[name]] == []
    assert [name for name in RATE_LIMITS if name not in table.split("| variable")[0]] == []


def test_every_command_is_documented():
    app = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "docs"})
    text = documentation()
    missing = [name for name in commands(app.cli)
               if f"`{name}" not in text and f"flask --app app {name}" not in text and f"`flask {name}" not in text]
    assert missing == []


def test_every_outward_route_is_documented():
    app = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "docs"})

    def shape(path: str) -> str:  # a placeholder as <no> or <int:id>; never "p99 < 60 ms ... >" across prose
        return re.sub(r"<[^<>\s]+>", "<>", path)

    text = shape(documentation())
    missing = sorted({rule.rule for rule in app.url_map.iter_rules()
                      if rule.rule.startswith(OUTWARD) and shape(rule.rule) not in text})
    assert missing == []


def test_every_make_target_is_documented_and_in_make_help():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.M)) - PLUMBING_TARGETS
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split())
    text = documentation()
    try:
        shown = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout
    except FileNotFoundError:  # no make on this machine: the README part still holds
        pytest.skip("make is not installed")
    assert sorted(t for t in targets if f"make {t}" not in text) == []
    assert sorted(t for t in phony - PLUMBING_TARGETS if f"make {t} " not in shown and f"make {t}\n" not in shown) == []


# --- links between the documents ------------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.*)$", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown page's headings: lower case, punctuation dropped (CJK kept), spaces as
    hyphens; a repeated heading's anchor numbered (-1, -2, ...)."""
    anchors, seen = set(), {}
    for heading in HEADING.findall(FENCE.sub("", text)):
        anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def test_heading_anchors_are_githubs():
    assert heading_anchors("# Personal information (PIPL)\n## 并单 and 一类事: one problem\n### `make run`\n## Files\n"
                           "## Files\n```\n# not a heading\n```\n") == {
        "personal-information-pipl", "并单-and-一类事-one-problem", "make-run", "files", "files-1"}


def test_every_link_between_the_documents_resolves():
    """A link from the README or a page under docs/ (or the benchmarks' README) to a file of the repository names one
    that exists, and its #anchor a heading of that page: documentation moved between pages must not leave a reader
    at a dead link."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "tests" / "bench" / "README.md"]
    dead = []
    for page in pages:
        for target in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            name, _, anchor = target.partition("#")
            linked = (page.parent / name).resolve() if name else page
            if not linked.exists():
                dead.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text(encoding="utf-8")):
                dead.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert dead == []
