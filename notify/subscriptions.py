"""Outbound webhooks: the subscriptions administrators keep, the deliveries (an outbox written in the transaction of
the case event they report) with every attempt to send them, and the operations on them.

A subscription is a URL, a secret, the event types it wants (`EVENT_TYPES`) and, optionally, one office whose subtree
it is limited to. Its secret signs every request (`notify.deliveries.signature`), so it is stored as it is: shown once
when made (or renewed), never listed, never logged. Nothing is deleted: a subscription is disabled, a delivery kept
with its attempts. The operations check their input, raise ValidationFailed (one message per field) and never commit.
"""
from __future__ import annotations

import enum
import json
import re
import secrets
import uuid
from datetime import datetime
from typing import Optional
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlmodel import Field, SQLModel

from tickets import offices, validation
from tickets.db import UTCDateTime, new_row, utcnow
from tickets.errors import ValidationFailed
from tickets.models import Office
from tickets.slots import AppSlot

# The event types a subscription may ask for, in the order the console lists them (what each means: README, Webhooks).
EVENT_TYPES = ("created", "status_changed", "replied", "closed", "rated", "escalated")
PING = "ping"  # the test event (发送测试): sent to one subscription whatever its types
EVENT_TYPE_LABELS = {
    "created": _l("Case filed"), "status_changed": _l("Status changed"), "replied": _l("Department replied"),
    "closed": _l("Case closed"), "rated": _l("Case rated"), "escalated": _l("Supervision raised"),
    PING: _l("Test event"),
}

URL_MAX = 2000
LABEL_MAX = 100
SECRET_MIN, SECRET_MAX = 16, 128
SECRET_PREFIX = "bjwh_"
_SECRET_CHARACTERS = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces: it goes into an HMAC key as is


def _time(**kwargs):
    return Field(sa_type=UTCDateTime, **kwargs)


class DeliveryStatus(str, enum.Enum):
    pending = "pending"      # written; waits for its commit, a worker, or the next attempt after a failure
    sending = "sending"      # claimed by a worker: the request may be in flight (the claim lapses after a lease)
    delivered = "delivered"  # the receiver answered 2xx
    failed = "failed"        # out of attempts, or the subscription was disabled; re-sendable from the console


FINAL = frozenset({DeliveryStatus.delivered.value, DeliveryStatus.failed.value})


class WebhookSubscription(SQLModel, table=True):
    """Where to POST which events: managed by administrators (console 管理 → 事件推送, `flask webhooks`)."""

    __tablename__ = "webhook_subscription"

    id: Optional[int] = Field(default=None, primary_key=True)
    url: str = Field(sa_type=sa.String(URL_MAX))
    # Signs each request (HMAC-SHA256); needed in clear to sign, so stored as is and shown only when made.
    secret: str = Field(sa_type=sa.String(SECRET_MAX))
    event_types: list = Field(sa_type=sa.JSON)  # a sorted subset of EVENT_TYPES
    office_id: Optional[int] = Field(default=None, foreign_key="office.id")  # this office's subtree only; None: all
    label: Optional[str] = Field(default=None, sa_type=sa.String(LABEL_MAX))
    active: bool = Field(default=True)
    created_at: datetime = _time(default_factory=utcnow)
    created_by: Optional[int] = Field(default=None, foreign_key="user_account.id")
    updated_at: datetime = _time(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription: its body as it is sent (the same bytes on every attempt), and where it stands.

    Written in the transaction of the case event it reports (`notify.events`), handed to a worker after the commit,
    re-driven by the scheduler when that hand-over was lost."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (sa.Index("ix_webhook_delivery_status_not_before", "status", "not_before"),
                      sa.Index("ix_webhook_delivery_created", "created_at", "id"),  # the console's list, newest first
                      sa.Index("ix_webhook_delivery_subscription", "subscription_id", "created_at"))

    id: Optional[int] = Field(default=None, primary_key=True)
    uuid: str = Field(sa_type=sa.String(36), unique=True)  # the payload's `id` and X-Banjie-Delivery
    subscription_id: int = Field(foreign_key="webhook_subscription.id")
    event_type: str = Field(sa_type=sa.String(20))
    ticket_id: Optional[int] = Field(default=None, foreign_key="ticket.id", index=True)
    event_id: Optional[int] = Field(default=None, foreign_key="event.id")
    body: str = Field(sa_type=sa.Text)
    status: str = Field(default=DeliveryStatus.pending.value, sa_type=sa.String(16))
    attempts: int = Field(default=0)  # attempts of this round (a re-send starts a new round); WEBHOOK_MAX_ATTEMPTS
    not_before: datetime = _time(default_factory=utcnow)
    claimed_at: Optional[datetime] = _time(default=None)
    created_at: datetime = _time(default_factory=utcnow)
    delivered_at: Optional[datetime] = _time(default=None)
    last_status_code: Optional[int] = Field(default=None)
    last_error: Optional[str] = Field(default=None, sa_type=sa.String(200))
    resent_at: Optional[datetime] = _time(default=None)
    resent_by: Optional[int] = Field(default=None, foreign_key="user_account.id")


class WebhookAttempt(SQLModel, table=True):
    """One request of a delivery: written when a worker claims it, completed with the answer. One left without an
    answer is a request whose worker stopped (killed, or the claim lapsed) before it could say how it went."""

    __tablename__ = "webhook_attempt"

    id: Optional[int] = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhook_delivery.id", index=True)
    started_at: datetime = _time(default_factory=utcnow)
    duration_ms: Optional[int] = Field(default=None)
    status_code: Optional[int] = Field(default=None)
    response_excerpt: Optional[str] = Field(default=None, sa_type=sa.Text)  # the answer's first characters
    error: Optional[str] = Field(default=None, sa_type=sa.String(200))


# --- the rules ---------------------------------------------------------------------------------------------------

def check_url(value) -> str:
    """An http(s) URL to POST to: no credentials in it (the list shows it; the signature is what proves Banjie),
    no fragment, a host and a valid port. FieldError otherwise."""
    url = validation.text(value, required=True, max_len=URL_MAX, single_line=True)
    if any(c.isspace() for c in url):
        raise validation.FieldError(_l("The address must not contain spaces."))
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a port that is not one
        host = parts.hostname or ""
        host.encode("idna")
    except (ValueError, UnicodeError):
        raise validation.FieldError(_l("This is not a valid web address.")) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise validation.FieldError(_l("The address must start with http:// or https://."))
    if not host:
        raise validation.FieldError(_l("The address has no host name."))
    if parts.username is not None or parts.password is not None:
        raise validation.FieldError(_l("Do not put a user name or password in the address: the signature proves the "
                                       "requests come from Banjie."))
    if parts.fragment or url.endswith("#"):
        raise validation.FieldError(_l("The address must not contain a fragment (#)."))
    if port == 0:
        raise validation.FieldError(_l("This is not a valid web address."))
    return url


def check_event_types(values) -> list[str]:
    if isinstance(values, str):
        values = [part.strip() for part in values.split(",")]
    if not isinstance(values, (list, tuple, set, frozenset)):
        raise validation.FieldError(_l("Choose at least one event type."))
    chosen = {v for v in values if isinstance(v, str) and v}
    if not chosen:
        raise validation.FieldError(_l("Choose at least one event type."))
    unknown = chosen - set(EVENT_TYPES)
    if unknown:
        raise validation.FieldError(_l("Unknown event type: %(names)s.", names=", ".join(sorted(unknown))[:100]))
    return [t for t in EVENT_TYPES if t in chosen]


def check_secret(value) -> str | None:
    """A secret of the subscriber's choosing, or None (one is generated)."""
    secret = validation.text(value, required=False, max_len=SECRET_MAX, single_line=True)
    if secret is None:
        return None
    if not _SECRET_CHARACTERS.fullmatch(secret):
        raise validation.FieldError(_l("The secret may contain only letters, digits and ASCII punctuation, without "
                                       "spaces."))
    if len(secret) < SECRET_MIN:
        raise validation.FieldError(_l("The secret must be at least %(n)d characters.", n=SECRET_MIN))
    return secret


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _office(session, check: validation.Collector, *, office_id=None, office_code=None) -> int | None:
    if office_code not in (None, ""):
        office = offices.by_code(session, office_code)
        if office is None:
            check.fail("office", _l("There is no office with this code."))
            return None
        return office.id
    if office_id in (None, ""):
        return None
    try:
        key = validation.identifier(office_id, required=False) if not isinstance(office_id, bool) else None
    except validation.FieldError:
        key = None
    if key is None or session.get(Office, key) is None:
        check.fail("office", _l("There is no such office."))
        return None
    return key


def _checked(session, data: dict, *, creating: bool) -> dict:
    check = validation.Collector()
    check.field("url", check_url, data.get("url"))
    check.field("event_types", check_event_types, data.get("event_types"))
    check.field("label", validation.text, data.get("label"), required=False, max_len=LABEL_MAX, single_line=True)
    if creating:
        check.field("secret", check_secret, data.get("secret"))
    values = dict(check.values)
    values["office_id"] = _office(session, check, office_id=data.get("office_id"), office_code=data.get("office_code"))
    check.raise_if_errors()
    return values


# --- the operations ------------------------------------------------------------------------------------------------

_CHANGED = "banjie.webhook_subscriptions_changed"  # session.info: the processes' lists are refreshed after the commit


def _changed(session) -> None:
    session.info[_CHANGED] = True


# What `notify.events.targets` read of the active subscriptions, kept WEBHOOK_CACHE_SECONDS; `notify.deliveries` drops it
# after a commit that changed a subscription (`subscriptions_changed`).
TARGETS = AppSlot("banjie.webhook_targets", "the active webhook subscriptions, read briefly")


def forget_targets(app=None) -> None:
    TARGETS.clear(app)


def subscriptions_changed(session) -> bool:
    return bool(session.info.pop(_CHANGED, False))


def create_subscription(session, data: dict, *, by: int | None, now: datetime) -> tuple[WebhookSubscription, str]:
    """A new active subscription from `url`, `event_types` (a list, or comma-separated), `office_id` or `office_code`
    (optional), `label` and `secret` (optional: one is generated). Returns it with its secret, to be shown once."""
    values = _checked(session, data, creating=True)
    secret = values.pop("secret") or new_secret()
    subscription = WebhookSubscription(**values, secret=secret, active=True, created_at=now, updated_at=now,
                                       created_by=by)
    session.add(subscription)
    session.flush()
    _changed(session)
    return subscription, secret


def update_subscription(session, subscription: WebhookSubscription, data: dict, *, now: datetime) -> None:
    """Change the URL, event types, office and label (the secret is renewed apart: `renew_secret`)."""
    values = _checked(session, data, creating=False)
    for name, value in values.items():
        setattr(subscription, name, value)
    subscription.updated_at = now
    _changed(session)


def set_active(session, subscription: WebhookSubscription, active: bool, *, now: datetime) -> bool:
    """Enable or disable; False when it already was. Deliveries waiting for a disabled subscription are not sent
    (they end failed, and may be re-sent once it is enabled again)."""
    if subscription.active == active:
        return False
    subscription.active, subscription.updated_at = active, now
    _changed(session)
    return True


def renew_secret(session, subscription: WebhookSubscription, *, now: datetime) -> str:
    """A new generated secret, to be shown once; requests are signed with it from the commit on."""
    subscription.secret, subscription.updated_at = new_secret(), now
    return subscription.secret


def send_test(session, subscription: WebhookSubscription, *, now: datetime) -> WebhookDelivery:
    """A `ping` delivery to this subscription (发送测试), sent after the commit like any other."""
    if not subscription.active:
        raise ValidationFailed(_l("The subscription is disabled: enable it before sending a test event."))
    key = str(uuid.uuid4())
    body = {"id": key, "type": PING, "occurred_at": _iso(now),
            "subscription": {"id": subscription.id, "event_types": list(subscription.event_types)}}
    delivery = new_row(WebhookDelivery, uuid=key, subscription_id=subscription.id, event_type=PING, body=dumps(body),
                       created_at=now, not_before=now)
    session.add(delivery)
    session.flush()
    return delivery


def dumps(body: dict) -> str:
    """The JSON text sent, as stored: compact, UTF-8 characters as they are."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _iso(value: datetime) -> str:
    from tickets.clock import iso

    return iso(value)
