"""What the SMS room keeps per app: how a written text reaches a worker, the provider backend, the shared send
rate, the administrators' wordings (cached briefly), and how a committed webhook delivery reaches a worker. Set up by `notify.init_app` or built on first use."""
from __future__ import annotations

from typing import Callable

from tickets.slots import AppSlot

# message id -> None: hands a committed outbox row to a worker (notify.tasks.enqueue; tests replace it).
ENQUEUE: AppSlot[Callable[[int], None]] = AppSlot("banjie.sms_enqueue", "hands a committed outbox row to a worker")
BACKEND: AppSlot = AppSlot("banjie.sms_backend", "the SMS_BACKEND of this app, built once")
RATE: AppSlot = AppSlot("banjie.sms_rate", "the send permits shared by every worker (SMS_RATE_PER_SECOND)")
# (read at, {key: body}): administrators' wordings, read in one query and kept for operations.TEMPLATE_TTL.
TEMPLATES: AppSlot[tuple] = AppSlot("banjie.sms_templates", "administrators' wordings, cached briefly")
# delivery id -> None: hands a committed webhook delivery to a worker (notify.tasks.enqueue_webhook; tests replace it).
WEBHOOK_ENQUEUE: AppSlot[Callable[[int], None]] = AppSlot("banjie.webhook_enqueue",
                                                          "hands a committed webhook delivery to a worker")
