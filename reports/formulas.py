"""The report's formulas, written down once: the metrics compute them, the PDF appendix and the API print them.

Change a definition here and bump FORMULA_VERSION: a stored report keeps the version it was computed with.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from tickets.models import Channel

# 2026.2 (issue 14): 先行联系 (contacts_due, contacted_on_time, contact_rate); default ratings counted apart
# (参评率, 满意率 with and without them); 申诉复核: a 差评 whose appeal was upheld leaves its department's 满意率 and
# 差评 figures (the office's total keeps it), a rectification lifted by an upheld appeal closes the case again, and
# the month's appeals are counted. A 差评 is set aside when its appeal was upheld by the time the report is made (the
# draft reviewed early in the next month shows the decisions of those days; publishing freezes it).
# 2026.3 (issue 15): cases the citizen withdrew (撤回数), counted apart: never accepted, so in no other figure.
# 2026.4 (issue 15): 受理数 by channel (网上, 窗口, 电话, 12345: the cases windows file for walk-ins and callers, 帮办代办);
# a rating the office took by phone (`record_rating`) is an answer like one by SMS or on the web, and its 差评 reopens.
# 2026.5 (issue 17): 并单: a case merged into another by the month's end is not a case of the cohort (the problem is
# counted once, by the case it joined); 并单数 (`merged`) counts the reports joined to a case in the month and 诉求人次
# (`people`) is 受理数 + 并单数; a joined citizen's rating counts for the department and window of the case joined.
# 2026.6: a case a window referred up before accepting it (`refer_up` out of `submitted`: it is `accepted` at the window
# above, without an `accept` event) is accepted by that window then, so it is a case of that month's cohort; it was in
# no month's before, though closed and rated.
# 2026.7: whose a case is, read from the history like every figure: the window that owned it at the month's end (the
# last hand-over before then), not the ticket's current `office_id` (a case referred up or assigned down later left
# the month's figures of the window that had it); the department leading it (its latest handling deadline) unless it
# returned the case by then, and for a closing and the survey it opens the department leading it at the closing (not
# the ticket's `department_id`, which a return leaves set: a case the window settled itself after a return was the
# returning department's closing and rating).
FORMULA_VERSION = "2026.7"


@dataclass(frozen=True)
class Formula:
    key: str
    label: object        # lazy string: the figure's name
    definition: object   # lazy string: how it is computed
    rate: bool = False   # a ratio, shown as a percentage


# 受理渠道: the month's accepted cases by how they came in (`Ticket.channel`), in the report's four channels; every
# channel a case can have is in exactly one, so they add up to 受理数.
ACCEPTED_BY_CHANNEL = (
    ("accepted_online", (Channel.web.value, Channel.api.value)),
    ("accepted_window", (Channel.window.value,)),
    ("accepted_phone", (Channel.phone.value,)),
    ("accepted_hotline", (Channel.hotline.value,)),
)
CHANNEL_COUNTS = tuple(key for key, _channels in ACCEPTED_BY_CHANNEL)

FORMULAS = (
    Formula("accepted", _l("Cases accepted"), _l(
        "Cases accepted in the month (the month's cohort): with an accept event, or referred up by a window before it "
        "accepted them (then accepted by the window above). Each problem once: a case merged into another (并单) by "
        "the month's end is not counted, the case it joined is. Rejected cases are never accepted and so never "
        "counted. Every figure counts a case for the window that owned it at the month's end (the one the last "
        "hand-over before then gave it to, else the one it was filed at) and, here, for the department leading it "
        "then (its latest handling deadline; none once the department returned it to the window).")),
    Formula("merged", _l("Reports merged (并单)"), _l(
        "Reports merged in the month into a case that handles the same problem, and still merged at the month's end; "
        "counted for the department and window of the case they joined.")),
    Formula("people", _l("People who reported (诉求人次)"), _l(
        "Cases accepted + reports merged: how many people's reports the month's problems stand for.")),
    Formula("accepted_online", _l("Accepted: online"), _l(
        "Of the cases accepted, those that came in online: filed on the public form or through the API (an app or "
        "a portal), or entered by a window's staff as received online.")),
    Formula("accepted_window", _l("Accepted: at the window"), _l(
        "Of the cases accepted, those a window's staff filed for a citizen who came to the window (帮办代办).")),
    Formula("accepted_phone", _l("Accepted: by phone"), _l(
        "Of the cases accepted, those a window's staff filed for a citizen who called the window.")),
    Formula("accepted_hotline", _l("Accepted: 12345 hotline"), _l(
        "Of the cases accepted, those the 12345 hotline handed over, filed by a window's staff. The four channels "
        "add up to the cases accepted.")),
    Formula("withdrawn", _l("Cases withdrawn"), _l(
        "Cases the citizen withdrew in the month, before the office accepted them; counted apart (they are never "
        "accepted, so in no other figure).")),
    Formula("closed", _l("Cases closed"), _l(
        "Cases of the cohort whose last status change before the month's end left them closed.")),
    Formula("closure_rate", _l("Closure rate"), _l("Closed ÷ accepted."), rate=True),
    Formula("closed_in_month", _l("Closed in the month"), _l(
        "Cases with a closing event (approve, resolve, explain) in the month, whenever they were filed; counted for "
        "the department leading the case at its last closing in the month (none when the window settled it itself, "
        "also after a department returned it).")),
    Formula("closed_on_time", _l("Closed on time"), _l(
        "Cases closed in the month none of whose accept, handling or rectification deadlines started before "
        "the closing was missed; an approved extension moves the deadline.")),
    Formula("on_time_rate", _l("On-time closure rate"), _l("Closed on time ÷ closed in the month."), rate=True),
    Formula("avg_handling_days", _l("Average handling time (working days)"), _l(
        "For cases closed in the month: working days from filing to the month's last closing event, "
        "averaged.")),
    Formula("overdue", _l("Overdue cases"), _l(
        "Cases with a handling or rectification deadline falling due in the month that was not met by its "
        "due time.")),
    Formula("contacts_due", _l("First contacts due"), _l(
        "First-contact deadlines (先行联系) decided in the month: those a department met in the month (contact made "
        "by the due time), and those falling due in the month without a contact by then, whether recorded late, "
        "never recorded, or ended by a reply or return after the due time. A deadline ended by a reply or a return "
        "before its due time, without a contact, is not counted.")),
    Formula("contacted_on_time", _l("First contacts on time"), _l(
        "Of those, the ones met: the department recorded a contact made by the due time (working hours of the "
        "office from the transfer).")),
    Formula("contact_rate", _l("On-time first-contact rate"), _l("First contacts on time ÷ first contacts due."),
            rate=True),
    Formula("returned", _l("Returned cases"), _l("Handling deadlines ended in the month by the department returning the case.")),
    Formula("extended", _l("Extensions"), _l("Extension requests approved in the month.")),
    Formula("supervised_1", _l("Reminded (level 1)"), _l(
        "Cases with a reminder or a level-1 escalation event in the month.")),
    Formula("supervised_2", _l("Supervised (level 2)"), _l("Cases with a level-2 escalation event in the month.")),
    Formula("supervised_3", _l("Listed (level 3)"), _l("Cases with a level-3 escalation event in the month.")),
    Formula("surveys", _l("Surveys closed"), _l(
        "Satisfaction surveys whose reply window closed in the month (so every answer they will get is in); counted, "
        "with their answers, for the department leading the case at the closing that opened the survey.")),
    Formula("rated", _l("Surveys answered"), _l(
        "Those surveys the citizen answered: by SMS, on the web, or on the phone to the office, which records the "
        "answer. A default rating is not an answer. Every citizen of a merged case gets a survey of their own; their "
        "rating counts for the department and window of the case they joined.")),
    Formula("defaulted", _l("Default ratings"), _l(
        "Those surveys left unanswered and recorded as basically satisfied (3) by default when they closed (the "
        "owning office defaults unanswered surveys; one that does not leaves them unrated).")),
    Formula("participation_rate", _l("Participation rate"), _l(
        "Surveys answered ÷ surveys closed: real answers only, default ratings not counted."), rate=True),
    Formula("satisfaction_rate", _l("Satisfaction rate"), _l(
        "(Very satisfied + satisfied + basically satisfied) ÷ surveys answered: real answers only, default ratings "
        "not counted. In a department's row the answers leave out the bad ratings whose appeal was upheld by the time "
        "the report was made (a draft made again after the decision shows it; a published report is frozen); the "
        "office's total keeps them."), rate=True),
    Formula("satisfaction_rate_with_default", _l("Satisfaction rate incl. default ratings"), _l(
        "(Very satisfied + satisfied + basically satisfied among the answers + default ratings) ÷ (surveys "
        "answered + default ratings): every default rating counts as basically satisfied. A department's row "
        "leaves out the bad ratings whose appeal was upheld, as above."), rate=True),
    Formula("good_rate", _l("Praise rate"), _l(
        "(Very satisfied + satisfied) ÷ surveys answered: real answers only."), rate=True),
    Formula("bad", _l("Bad ratings"), _l(
        "Ratings of 4 (dissatisfied) or 5 (very dissatisfied) among the answers (a default rating is never one). "
        "A department's row leaves out those whose appeal was upheld by the time the report was made; the office's "
        "total (and each window's) keeps them.")),
    Formula("bad_rectified_rate", _l("Bad-rating rectification rate"), _l(
        "Bad ratings after which the case was closed again (rework approved, explained, or the rectification lifted "
        "by an upheld appeal) before the month's end ÷ bad ratings (in a department's row, its bad ratings as "
        "counted there)."), rate=True),
    Formula("return_visit_rate", _l("Return-visit rate for bad ratings"), _l(
        "Bad ratings with a return visit recorded before the month's end ÷ bad ratings (every case is filed "
        "under the citizen's real name; in a department's row, its bad ratings as counted there)."), rate=True),
    Formula("appeals", _l("Appeals filed"), _l(
        "Appeals of a bad rating (申诉复核) a department filed in the month; counted for that department.")),
    Formula("appeals_upheld", _l("Appeals upheld"), _l(
        "Appeals the supervisor upheld in the month, whenever filed. A bad rating leaves its department's figures "
        "of the month its survey closed in once its appeal is upheld, if that month's report is still a draft when "
        "it is made again.")),
    Formula("appeals_rejected", _l("Appeals rejected"), _l(
        "Appeals the supervisor rejected in the month, whenever filed; nothing else changes.")),
)
FORMULA_BY_KEY = {f.key: f for f in FORMULAS}
