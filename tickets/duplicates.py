"""可能重复 (possible duplicates) and the cluster a new case joins: one definition of "probably the same problem".

A case's possible duplicates are the other cases the actor may see (`tickets.access.visibility`, in the query) that
are open, or final (not `merged`) and closed within DUPLICATE_CLOSED_DAYS, and

- **phone**: filed from the same mobile number (stored normalised to E.164 at filing, `tickets.phones`) within
  DUPLICATE_PHONE_DAYS of the case, either side; landlines do not count (a switchboard is many people); or
- **text**: at the same window about the same service item (a case without one: the same problem type, also without
  one) within DUPLICATE_TEXT_DAYS, with a text similarity of at least DUPLICATE_TEXT_THRESHOLD.

The text as the similarity reads it is kept at filing in `Ticket.match_text` (`match_text_of`): the description
normalised (`normalise`: NFKC, traditional to simplified characters with zhconv, lower case, no punctuation or space),
without the greetings and thanks that say nothing of the problem (`BOILERPLATE`) and without the service item's own
name wherever it is written or sounds alike (every candidate shares it; 营业执照变更等记 is the item with a typo), cut at
MATCH_TEXT_MAX characters. Cases filed before migration 0018 have none: their description is normalised when they are
read as candidates (its first DESCRIPTION_READ characters), and a case page's own text likewise.

`similarity(a, b)` (0..1) on two match texts: COSINE_WEIGHT (0.65) x the cosine of their sets of characters (less the
commonest function characters) and character bigrams, taken both as written and as read by sound (`SOUNDS`: each
character to one character of the same toneless pinyin, from pypinyin's table, so that 制卡/质卡 and 登记/等记 match:
homophones are what a pinyin keyboard gets wrong), + 0.35 x rapidfuzz's normalised Indel similarity (`fuzz.ratio`) of
the written texts. The set cosine catches the same words in another order; the Indel similarity rewards the same
phrasing. On tests/duplicate_corpus.py (a generated month of ~380 cases, ten recurring problems in many wordings,
typos, traditional characters; labelled by construction) the default threshold 0.2 gives precision 0.974 and recall
0.902 (seeds 1, 2, 3, 5, 7, 99: precision 0.96-0.98, recall 0.82-0.91).

Candidates are read in one statement (UNION ALL of the two rules) through two indexes, each capped at CANDIDATES,
newest first, so the cost does not grow with the table: ix_ticket_phone_created (phone, created_at) and
ix_ticket_office_item_created (office_id, service_item, created_at). Of the text candidates the SCORED closest by
Indel similarity alone (rapidfuzz, one C loop) get the full score in Python; then the `limit` best are read as rows.

`cluster_for` is the filing's one read (tickets/intake.py `file_ticket`): the cluster (`cluster_id`) of the most
similar earlier case at the same window and service item within CLUSTER_DAYS, similar at CLUSTER_TEXT_THRESHOLD or
more (of the newest CLUSTER_CANDIDATES, the CLUSTER_SCORED closest by Indel similarity); None when there is none (the
new case then starts its own cluster: its own id). Earlier cases without a match text are read from their description.
tickets/clusters.py lists the clusters.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import math
import operator
import os
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
import zhconv
from flask import current_app
from rapidfuzz import fuzz, process

from . import phones
from .privacy import crypto
from .access import visibility
from .models import OPEN_STATUS_VALUES, Status, Ticket

MATCH_TEXT_MAX = 300     # characters of a normalised description kept and compared
DESCRIPTION_READ = 900   # characters of an old case's description normalised when it has no match text
CANDIDATES = 200         # cases read at most per rule (the newest first), for one case's suggestions
CLUSTER_CANDIDATES = 30  # earlier cases read at most when a new case looks for its cluster (the newest)
CLUSTER_SCORED = 3       # of which the closest by Indel similarity get the full score (the filing pays for each)
SCORED = 50              # of the text candidates, the closest by Indel similarity alone get the full score
LIMIT = 10               # suggestions shown at most
COSINE_WEIGHT = 0.65

# zhconv's dictionary, loaded once at import (its own lazy load leaves the file for the garbage collector to close)
zhconv.zhconv.loaddict(os.path.join(os.path.dirname(zhconv.zhconv.__file__), "zhcdict.json"))
_NOT_WORD = re.compile(r"[\W_]+")
# What citizens write around any complaint, normalised: it says nothing of which problem it is.
BOILERPLATE = ("你好", "您好", "领导好", "领导", "谢谢", "希望尽快解决", "尽快解决", "请有关部门重视", "有关部门", "盼复",
               "麻烦问一下", "麻烦", "反映一下", "我想反映个问题", "想反映", "第二次反映了", "还是没解决",
               "上次反映的问题到现在没人回复", "再说一遍", "前几天已经提交过", "一直没消息", "尽快处理", "急", "请问")
# Characters too common to tell problems apart on their own (they still count inside bigrams).
STOP_CHARACTERS = frozenset("的了是我在不有人这个们就也都还说要去到和与吗呢吧啊很太一么那你您好请问谢把被让给对得地再以已")


def normalise(text) -> str:
    """A text as the similarity reads it: NFKC (full-width letters and digits to ASCII), no punctuation, symbols or
    space, lower case, simplified characters. Anything that is not a string is the empty text."""
    if not isinstance(text, str):
        return ""
    flat = _NOT_WORD.sub("", unicodedata.normalize("NFKC", text)).lower()
    return zhconv.convert(flat, "zh-cn") if flat else ""


_BOILERPLATE = tuple(sorted({normalise(p) for p in BOILERPLATE}, key=len, reverse=True))


def match_text_of(description, service_item=None) -> str:
    """`Ticket.match_text`: the normalised description without boilerplate and the service item's name, cut."""
    text = normalise(description[:DESCRIPTION_READ * 2] if isinstance(description, str) else description)
    for phrase in _BOILERPLATE:
        if phrase in text:
            text = text.replace(phrase, "")
    item = normalise(service_item)
    if item:
        # wherever it sounds the same: 营业执照变更等记 is 营业执照变更登记 with a typo (the sounds map 1:1 on characters)
        sound, item_sound = text.translate(SOUNDS), item.translate(SOUNDS)
        kept, at = [], 0
        while (found := sound.find(item_sound, at)) >= 0:
            kept.append(text[at:found])
            at = found + len(item)
        text = "".join(kept) + text[at:]
    return text[:MATCH_TEXT_MAX]


def _sound_table() -> dict[int, str]:
    """Each common Chinese character to one character of the same sound (toneless pinyin, its first reading): 制 and 质
    (zhi), 证 and 正 (zheng) read alike. Typing Chinese is choosing among homophones, so that is where typos are.

    Read from pypinyin's own table file (its JSON, without importing the package: that would load its phrase
    dictionaries too, a second and 50 MB more per process), once at import."""
    location = importlib.util.find_spec("pypinyin").submodule_search_locations[0]
    with open(os.path.join(location, "pinyin_dict.json"), encoding="utf-8") as file:
        readings = json.load(file)
    first: dict[str, str] = {}
    table: dict[int, str] = {}
    for code in sorted(map(int, readings)):
        if 0x4E00 <= code <= 0x9FFF:
            sound = "".join(c for c in unicodedata.normalize("NFD", readings[str(code)].split(",")[0])
                            if not unicodedata.combining(c))
            table[code] = first.setdefault(sound, chr(code))
    return table


SOUNDS = _sound_table()
_STOP_SOUNDS = frozenset("".join(STOP_CHARACTERS).translate(SOUNDS))


def _grams(text: str, stop: frozenset) -> set:
    """The characters (less `stop`) and the character bigrams of a text (built in C: map over two strings)."""
    grams = set(map(operator.add, text, text[1:]))
    grams.update(set(text) - stop)
    return grams


def features(match: str) -> tuple[set, set]:
    """What the cosine compares: the characters (less STOP_CHARACTERS) and character bigrams of a match text, and the
    same of the text read by sound (`SOUNDS`), so that a homophone typo still shares half its grams."""
    return _grams(match, STOP_CHARACTERS), _grams(match.translate(SOUNDS), _STOP_SOUNDS)


def _score(a: str, fa: tuple[set, set], b: str, fb: tuple[set, set]) -> float:
    """COSINE_WEIGHT x the cosine of the two texts' grams (written and by sound, as one set) + the rest x rapidfuzz's
    normalised Indel similarity of the written texts."""
    size_a, size_b = len(fa[0]) + len(fa[1]), len(fb[0]) + len(fb[1])
    if not size_a or not size_b:
        return 0.0
    cosine = (len(fa[0] & fb[0]) + len(fa[1] & fb[1])) / math.sqrt(size_a * size_b)
    return round(COSINE_WEIGHT * cosine + (1 - COSINE_WEIGHT) * fuzz.ratio(a, b) / 100.0, 4)


def similarity(a, b) -> float:
    """0 (nothing alike) .. 1 (the same) for two match texts (`match_text_of`); symmetric; 0 for empty texts."""
    a = a if isinstance(a, str) else ""
    b = b if isinstance(b, str) else ""
    return _score(a, features(a), b, features(b))


def settings() -> dict:
    config = current_app.config
    return {name: config[name] for name in ("DUPLICATE_PHONE_DAYS", "DUPLICATE_TEXT_DAYS", "DUPLICATE_TEXT_THRESHOLD",
                                            "DUPLICATE_CLOSED_DAYS", "CLUSTER_DAYS", "CLUSTER_TEXT_THRESHOLD")}


def _same_subject(office_id, service_item, problem_type):
    """WHERE clause: the same window and service item (none: the same problem type, also without an item)."""
    if service_item:
        return sa.and_(Ticket.office_id == office_id, Ticket.service_item == service_item)
    return sa.and_(Ticket.office_id == office_id, Ticket.service_item.is_(None), Ticket.problem_type == problem_type)


def _text_of(match, description) -> str:
    """A candidate's match text: the stored one, or (a case filed before match texts) its description's."""
    return match if match is not None else match_text_of(description)


_READ = (Ticket.id, Ticket.match_text,
         sa.case((Ticket.match_text.is_(None), sa.func.substr(Ticket.description, 1, DESCRIPTION_READ))))


def _best_by_ratio(match_text: str, texts: list[str], keep: int) -> list[int]:
    """The indexes of the `keep` texts closest to `match_text` by rapidfuzz's Indel similarity alone (one C loop),
    the ones worth the full score."""
    if len(texts) <= keep:
        return list(range(len(texts)))
    return [index for _text, _score, index in process.extract(match_text, texts, scorer=fuzz.ratio, limit=keep)]


def _cluster_columns(with_item: bool, office):
    """The cluster read's rows: the newest CLUSTER_CANDIDATES cases of one subject (the window `office`, the service
    item or, without one, the problem type; bind parameters item / problem_type, since, now), newest first."""
    subject = (Ticket.service_item == sa.bindparam("item")) if with_item else sa.and_(
        Ticket.service_item.is_(None), Ticket.problem_type == sa.bindparam("problem_type"))
    return (sa.select(Ticket.cluster_id.label("cluster_id"), Ticket.match_text.label("match_text"),
                      _READ[2].label("description"), Ticket.created_at.label("created_at"))
            .where(Ticket.office_id == office, subject, Ticket.cluster_id.is_not(None),
                   Ticket.created_at >= sa.bindparam("since"), Ticket.created_at <= sa.bindparam("now"))
            .order_by(Ticket.created_at.desc()).limit(CLUSTER_CANDIDATES))


@functools.lru_cache(maxsize=None)
def _cluster_statement(with_item: bool) -> sa.Select:
    """The cluster read on its own (not PostgreSQL), built once: it runs at every filing."""
    return _cluster_columns(with_item, sa.bindparam("office_id"))


def cluster_candidates(with_item: bool, office) -> sa.ScalarSelect:
    """The cluster read as one JSON value ([[cluster_id, match_text, description], ...], newest first), for the filing
    to read in the statement that takes its number (PostgreSQL: tickets/intake.py `take_number`), so that it costs no
    round trip of its own. `office`: an SQL expression of the window's id."""
    from sqlalchemy.dialects.postgresql import aggregate_order_by

    rows = _cluster_columns(with_item, office).subquery()
    return sa.select(sa.func.coalesce(sa.func.json_agg(aggregate_order_by(
        sa.func.json_build_array(rows.c.cluster_id, rows.c.match_text, rows.c.description), rows.c.created_at.desc())),
        sa.text("'[]'::json"))).scalar_subquery()


def cluster_params(service_item: str | None, problem_type: str, now: datetime, config: dict | None = None) -> dict:
    """The cluster read's bind parameters (but the window's)."""
    config = config or settings()
    params = {"since": now - timedelta(days=config["CLUSTER_DAYS"]), "now": now}
    if service_item:
        params["item"] = service_item
    else:
        params["problem_type"] = problem_type
    return params


def cluster_of(rows, match_text: str, config: dict | None = None) -> int | None:
    """The cluster among the cluster read's rows (cluster_id, match_text, description; newest first) whose case is the
    most similar to `match_text`, at CLUSTER_TEXT_THRESHOLD or more; of equal scores the newest. Only the
    CLUSTER_SCORED closest by Indel similarity get the full score."""
    if not rows or not match_text:
        return None
    config = config or settings()
    texts = [_text_of(match, description) for _cluster, match, description, *_ in rows]
    mine = features(match_text)
    best, best_score = None, float(config["CLUSTER_TEXT_THRESHOLD"])
    for index in sorted(_best_by_ratio(match_text, texts, CLUSTER_SCORED)):
        score = _score(match_text, mine, texts[index], features(texts[index]))
        if score >= best_score:
            best, best_score = rows[index][0], score + 1e-9
    return best


def cluster_for(session, *, office_id: int, service_item: str | None, problem_type: str, match_text: str,
                now: datetime, config: dict | None = None) -> int | None:
    """The cluster a case filed now joins: that of the most similar earlier case at the same window about the same
    service item within CLUSTER_DAYS (similarity >= CLUSTER_TEXT_THRESHOLD); None: none, it starts its own. (Filing on
    PostgreSQL reads the same rows with its number: `cluster_candidates`, then `cluster_of`.)"""
    config = config or settings()
    if not match_text:
        return None
    params = {"office_id": office_id, **cluster_params(service_item, problem_type, now, config)}
    rows = session.connection().execute(_cluster_statement(bool(service_item)), params).all()  # Core: no ORM step
    return cluster_of(rows, match_text, config)


@dataclass(frozen=True)
class Candidate:
    ticket: Ticket
    reasons: tuple[str, ...]  # "phone" and/or "text"
    score: float              # the text similarity, 0..1 (also for a phone match)


def possible_duplicates(session, ticket: Ticket, actor, now: datetime, limit: int = LIMIT,
                        config: dict | None = None) -> list[Candidate]:
    """The cases that are probably the same problem as `ticket`, that `actor` may see, the most similar first.

    Two round trips: the candidates of both rules in one statement (UNION ALL of two indexed, capped selects), then
    the `limit` best as Ticket rows."""
    config = config or settings()
    live = sa.and_(
        Ticket.id != ticket.id, Ticket.status != Status.merged.value,
        sa.or_(Ticket.status.in_(OPEN_STATUS_VALUES),
               Ticket.closed_at >= now - timedelta(days=config["DUPLICATE_CLOSED_DAYS"])),
        visibility(actor))
    mine = ticket.match_text if ticket.match_text is not None else match_text_of(ticket.description,
                                                                               ticket.service_item)
    selects = []
    if ticket.phone and phones.is_mobile(ticket.phone):
        days = timedelta(days=config["DUPLICATE_PHONE_DAYS"])
        selects.append(
            sa.select(sa.literal("phone").label("rule"), *_READ)
            .where(Ticket.phone_index == (ticket.phone_index or crypto.phone_index(ticket.phone)),
                   Ticket.created_at >= ticket.created_at - days,
                   Ticket.created_at <= ticket.created_at + days, live)
            .order_by(Ticket.created_at.desc()).limit(CANDIDATES))
    if mine:
        days = timedelta(days=config["DUPLICATE_TEXT_DAYS"])
        selects.append(
            sa.select(sa.literal("text").label("rule"), *_READ)
            .where(_same_subject(ticket.office_id, ticket.service_item, ticket.problem_type),
                   Ticket.created_at >= ticket.created_at - days, Ticket.created_at <= ticket.created_at + days, live)
            .order_by(Ticket.created_at.desc()).limit(CANDIDATES))
    if not selects:
        return []
    statement = selects[0] if len(selects) == 1 else sa.union_all(
        *(select.subquery().select() for select in selects))
    rows = session.execute(statement).all()
    texts = {id_: _text_of(match, description) for _rule, id_, match, description in rows}
    phone_ids = {id_ for rule, id_, _match, _description in rows if rule == "phone"}
    text_ids = [id_ for rule, id_, _match, _description in rows if rule == "text"]
    if len(text_ids) > SCORED:  # only the closest by Indel similarity get the full score
        text_ids = [text_ids[i] for i in _best_by_ratio(mine, [texts[i] for i in text_ids], SCORED)]
    mine_features = features(mine)
    threshold = float(config["DUPLICATE_TEXT_THRESHOLD"])
    scores = {id_: _score(mine, mine_features, texts[id_], features(texts[id_])) if mine else 0.0
              for id_ in phone_ids.union(text_ids)}
    reasons: dict[int, set] = {id_: {"phone"} for id_ in phone_ids}
    for id_ in text_ids:
        if scores[id_] >= threshold:
            reasons.setdefault(id_, set()).add("text")
    if not reasons:
        return []
    ranked = sorted(reasons, key=lambda i: (-scores[i], -i))[:limit]
    tickets = {t.id: t for t in session.scalars(sa.select(Ticket).where(Ticket.id.in_(ranked)))}
    return [Candidate(tickets[i], tuple(r for r in ("phone", "text") if r in reasons[i]), scores[i])
            for i in ranked if i in tickets]
