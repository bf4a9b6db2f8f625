"""Reading a citizen's reply to the survey. Pure: text in, meaning out; an unclear reply is never guessed."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

WORDS = {"非常满意": 1, "满意": 2, "基本满意": 3, "不满意": 4, "非常不满意": 5}
OPT_OUT = {"TD", "退订", "T", "STOP", "UNSUBSCRIBE", "退订评价"}
# Punctuation and filler people add around an answer ("4。", "【2】", "2 谢谢").
_NOISE = re.compile(r"[\s\W_]+|谢谢|谢了|您好|你好|好的")


@dataclass(frozen=True)
class Reply:
    kind: str            # score | opt_out | unclear
    score: int | None = None


def parse_reply(text: str | None) -> Reply:
    """'1'..'5' (full-width too), the five Chinese words, a digit with its own word ('4不满意'), or TD/退订."""
    if not text:
        return Reply("unclear")
    normal = unicodedata.normalize("NFKC", text).strip().upper()
    if normal.replace(" ", "") in OPT_OUT:
        return Reply("opt_out")
    compact = _NOISE.sub("", normal)
    if compact in OPT_OUT:
        return Reply("opt_out")
    if compact in WORDS:
        return Reply("score", WORDS[compact])
    match = re.fullmatch(r"([1-5])(\D*)", compact)
    if match:
        digit, word = int(match.group(1)), match.group(2)
        if not word or WORDS.get(word) == digit:
            return Reply("score", digit)
    return Reply("unclear")
