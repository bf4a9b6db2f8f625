"""SMS: the outbox, its backends and worker, the webhooks, and the satisfaction survey.

Other rooms call `send_sms`; it writes an outbox row in the caller's transaction and the row is sent
by a Dramatiq worker only after that transaction commits (see `notify.outbox`).
"""
from __future__ import annotations

from .operations import send_sms

__all__ = ["send_sms"]
