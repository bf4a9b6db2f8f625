"""The ticket workflow: every status change in Banjie goes through `perform` (staff) or `rate` (citizen).

- `registry`: what each kind of event is (label, flags the other rooms read) and, for staff actions, who may
  take it from which statuses, its input and its console form;
- `actions`: the definitions, one per action, each beside its handler;
- `engine`: `perform`, the row claim and `record`, which appends the Event and runs the app's reactions;
- `survey`: the satisfaction survey's rounds, the citizen's rating and the default rating of an unanswered round;
- `citizen`: the citizen's 补充材料 (adding information), 撤回 (taking back a case not yet accepted) and request to
  delete their personal information;
- `merging`: 并单, one case joined to another that handles the same problem (`merge`, `split`), and the answer
  and survey its citizen gets when that one is answered;
- `governance`: 主动治理, the office's own case opened from a 一类事 and its answer told to the linked cases;
- `appeals`: which 差评 a department may appeal (申诉复核) and until when, and the appeal waiting for a decision.
"""
from __future__ import annotations

from ..access import CITIZEN, SYSTEM, Actor
from . import actions  # noqa: F401  (defines every action and event kind)
from . import merging  # noqa: F401  (并单: merge, split and their event kinds)
from . import governance  # noqa: F401  (主动治理: notify_linked and its event kinds)
from .actions import (CANCEL_ANONYMISE_REQUEST, MAX_WORKING_DAYS, RECOVER_CODE, REQUEST_ANONYMISE, SUPPLEMENT, TEXT_MAX,
                      WITHDRAW, escalate)
from .appeals import APPEAL_WORKING_DAYS, appeal_window_ends, pending_appeal
from .engine import allowed_actions, perform, record, role_allows
from .reactions import reactions
from .registry import ACTIONS, KINDS, Action, Input, Kind, label_of, names, public_note
from .survey import default_rating, open_survey, open_survey_for, rate, unvisited_bad_rating
from .citizen import (may_request_deletion, may_supplement, may_withdraw, request_deletion, supplement, withdraw,
                      withdraw_deletion_request)

__all__ = ["ACTIONS", "APPEAL_WORKING_DAYS", "CITIZEN", "KINDS", "MAX_WORKING_DAYS", "RECOVER_CODE", "SYSTEM", "TEXT_MAX", "Action",
           "Actor", "Input", "Kind", "allowed_actions", "appeal_window_ends", "default_rating", "escalate", "label_of",
           "names", "open_survey", "open_survey_for", "pending_appeal", "perform", "public_note", "rate", "reactions",
           "record", "role_allows", "unvisited_bad_rating", "may_withdraw", "withdraw", "WITHDRAW", "may_supplement", "supplement",
           "SUPPLEMENT", "may_request_deletion", "request_deletion", "REQUEST_ANONYMISE", "withdraw_deletion_request",
           "CANCEL_ANONYMISE_REQUEST"]
