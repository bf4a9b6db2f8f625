"""The sandbox a text message renders in: what an administrator's wording may contain, and bounds on its work.

A text message is wording with variables: `{{ tracking_no }}`, a filter such as `{{ reply|clip(70) }}`, an
`{% if %}`. Anything else (loops, macros, assignments, calls such as `.split()`, attributes, unknown
filters) is refused when the text is saved, with a message naming what is not allowed: such a text can
work on the preview's sample and fail, or run for ever, on real data. The same check runs (cached per
text) before every rendering, so a text saved before a rule existed is never rendered. Rendering itself is
bounded too: `*` and `**` may not build huge strings or numbers, `%` does not format strings, and the
output stops at MAX_OUTPUT characters. The source is parsed and checked before it is compiled, because
Jinja's compiler folds constant expressions (`'a' * 10**10`) while compiling.
"""
from __future__ import annotations

import functools

from flask_babel import lazy_gettext as _l
from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_SOURCE = 1000      # characters of wording: a message is 201 at most
MAX_OUTPUT = 2000      # characters a rendering may produce before it is stopped
MAX_NUMBER = 10_000    # the largest number written in a text (a clip length, a threshold)
MAX_POWER = 64
MAX_POWER_BITS = 1024  # the largest whole number ** may make (10000 ** 64 has 851 bits): a chain of powers is not
# bounded by its exponents alone, ((10000 ** 64) ** 64) ** 64 took seconds of CPU and grew with each step

ALLOWED_FILTERS = frozenset({"clip", "default", "d", "upper", "lower", "trim", "truncate", "length", "count",
                             "string", "title", "capitalize", "abs", "round", "int", "first", "last"})
# Expressions and the one statement a wording needs. Tests (`is defined`) are Jinja's cheap built-ins.
ALLOWED_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.Name, nodes.Filter,
                 nodes.Test, nodes.If, nodes.CondExpr, nodes.Compare, nodes.Operand, nodes.And, nodes.Or,
                 nodes.Not, nodes.Neg, nodes.Pos, nodes.Concat, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div,
                 nodes.FloorDiv, nodes.Mod, nodes.Pow, nodes.Keyword)
NOT_ALLOWED = {
    nodes.For: "{% for %}", nodes.Macro: "{% macro %}", nodes.CallBlock: "{% call %}", nodes.Assign: "{% set %}",
    nodes.AssignBlock: "{% set %}", nodes.FilterBlock: "{% filter %}", nodes.With: "{% with %}",
    nodes.Include: "{% include %}", nodes.Import: "{% import %}", nodes.FromImport: "{% from %}",
    nodes.Extends: "{% extends %}", nodes.Block: "{% block %}", nodes.Call: _l("calls such as .split()"),
    nodes.Getattr: _l("attributes such as .name"), nodes.Getitem: _l("indexing such as [1]"),
    nodes.List: _l("lists"), nodes.Tuple: _l("lists"), nodes.Dict: _l("dictionaries"),
}


class TemplateProblem(ValueError):
    """Why a text cannot be used, in words for the administrator who wrote it."""


class SmsSandbox(SandboxedEnvironment):
    """Jinja's sandbox, with the operators that can make a huge value checked before they run."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int) \
                        and len(sequence) * times > MAX_OUTPUT:
                    raise SecurityError("the result of * would be too long")
        elif operator == "**":
            if not isinstance(right, (int, float)) or abs(right) > MAX_POWER:
                raise SecurityError("the exponent of ** is too large")
            if isinstance(left, int) and right > 0 and abs(left).bit_length() * right > MAX_POWER_BITS:
                raise SecurityError("the result of ** would be too large")
        elif operator == "%" and isinstance(left, str):
            raise SecurityError("% does not format text here")
        return super().call_binop(context, operator, left, right)


def sms_length(text: str) -> int:
    """The length of a text as the provider counts and bills it: UTF-16 code units (UCS-2), so a character outside the
    Basic Multilingual Plane (an emoji, a CJK Extension B character such as 𠀀) is two. Every SMS length Banjie checks or
    shows is this one: `clip`, `messages.segments` and MAX_LENGTH, the template editor's count."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2  # a lone surrogate (not UTF-8 anyway) is one


def _clip(value, length: int = 40) -> str:
    """The value on one line, cut to `length` characters (`sms_length`: an emoji counts two) with an ellipsis."""
    text = " ".join(str(value or "").split())
    if sms_length(text) <= length:
        return text
    kept, used = [], 1  # the ellipsis
    for char in text:
        used += 2 if ord(char) > 0xFFFF else 1
        if used > length:
            break
        kept.append(char)
    return "".join(kept) + "…"


environment = SmsSandbox(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=False)
environment.filters["clip"] = _clip


def _describe(node):
    for kind, text in NOT_ALLOWED.items():
        if isinstance(node, kind):
            return text
    return type(node).__name__


def _refusal(node, variables: frozenset):
    if isinstance(node, nodes.Name) and node.name not in variables:
        return _l("“%(name)s” is not a variable of this message. It has: %(names)s.",
                  name=node.name, names=", ".join(sorted(variables)))
    if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
        return _l("The filter “%(name)s” cannot be used. These can: %(names)s.",
                  name=node.name, names=", ".join(sorted(ALLOWED_FILTERS)))
    if isinstance(node, nodes.Const) and isinstance(node.value, (int, float)) and abs(node.value) > MAX_NUMBER:
        return _l("Numbers in a text message can be at most %(n)d.", n=MAX_NUMBER)
    return None


def problem_with(source: str, variables) -> object | None:
    """Why the source is not wording this sandbox renders (a message for its author), or None."""
    if len(source) > MAX_SOURCE:
        return _l("The text is too long to be a message (%(n)d characters at most).", n=MAX_SOURCE)
    try:
        found = list(environment.parse(source).find_all(nodes.Node))
    except TemplateSyntaxError as error:
        return _l("The text cannot be used: %(error)s", error=str(error))
    except (RecursionError, MemoryError):
        return _l("The text is nested too deeply.")
    refused = {str(_describe(node)): None for node in found if not isinstance(node, ALLOWED_NODES)}
    if refused:
        return _l("A text message holds wording, variables, filters and if-conditions only; "
                  "this cannot be used: %(what)s.", what=" / ".join(refused))
    variables = frozenset(variables)
    return next((problem for node in found if (problem := _refusal(node, variables)) is not None), None)


def check_source(source: str, variables) -> None:
    """TemplateProblem unless the source is wording this sandbox renders."""
    problem = problem_with(source, variables)
    if problem is not None:
        raise TemplateProblem(problem)


@functools.lru_cache(maxsize=512)
def usable(source: str, variables: frozenset) -> bool:
    """`problem_with(...) is None`, remembered: checked before every rendering of an administrator's text."""
    return problem_with(source, variables) is None


@functools.lru_cache(maxsize=256)
def _compiled(source: str):
    return environment.from_string(source)


def render(source: str, context: dict) -> str:
    """Render a checked source; TemplateProblem when the output grows past MAX_OUTPUT."""
    size, parts = 0, []
    for part in _compiled(source).generate(**context):
        size += len(part)
        if size > MAX_OUTPUT:
            raise TemplateProblem(_l("The message would be longer than %(n)d characters.", n=MAX_OUTPUT))
        parts.append(part)
    return "".join(parts)
