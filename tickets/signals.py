"""Signals other rooms listen to, so the ticket room never imports them.

`event_recorded` fires inside the caller's transaction each time an Event is added (sender: the Event;
keyword arguments: `session`, `ticket`, and `query_code` for a filing). Receivers may add rows to the same
session (an SMS outbox row, an escalation step) and must not commit. For a filing nothing is written yet
when they run (the ticket has its id; its rows and theirs go in one statement afterwards, see
`tickets.intake.file_ticket`): they must not read the new ticket back or flush.
"""
from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

event_recorded = _signals.signal("event-recorded")
