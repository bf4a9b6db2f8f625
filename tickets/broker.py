"""The Dramatiq broker: embedded (in-process) by default, Redis or RabbitMQ in production."""
from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware

from .slots import AppSlot

BROKER: AppSlot[dramatiq.Broker] = AppSlot("banjie.broker", "the app's Dramatiq broker (init_broker)")


class AppContextMiddleware(Middleware):
    """Runs every message inside an app context, so actors use the same session code as views."""

    def __init__(self, app):
        self.app = app
        self._contexts = {}

    def before_process_message(self, broker, message):
        context = self.app.app_context()
        context.push()
        self._contexts[message.message_id] = context

    def _pop(self, message):
        context = self._contexts.pop(message.message_id, None)
        if context is not None:
            context.pop()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        self._pop(message)

    def after_skip_message(self, broker, message):
        self._pop(message)


REDIS_TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 5}


def make_broker(url: str) -> dramatiq.Broker:
    if not url:
        return StubBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis
        from dramatiq.brokers.redis import RedisBroker

        # Enqueueing happens after a filing's commit, in its request: an unreachable or silent Redis must cost
        # seconds, not the minutes of the system's TCP timeouts (the row waits for the outbox sweep meanwhile).
        # Options in the URL's query string win over these.
        pool = redis.ConnectionPool.from_url(url, **REDIS_TIMEOUTS)
        return RedisBroker(client=redis.Redis(connection_pool=pool))
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker
        return RabbitmqBroker(url=url)
    raise ValueError(f"BROKER_URL must be redis://, amqp:// or empty, not {url.split(':', 1)[0]}://")


def init_broker(app) -> dramatiq.Broker:
    """Build the configured broker and make it the global one; call before any actor module is imported."""
    from .logs import RequestIdMiddleware
    from .telemetry import WorkerMetrics

    broker = make_broker(app.config["BROKER_URL"])
    broker.add_middleware(AppContextMiddleware(app))
    # The request id of what enqueued a message, on the actor's lines: first, so that it is set before any other
    # middleware's hook and unset after all of them (Retries logs its retry after the actor).
    broker.add_middleware(RequestIdMiddleware(), before=type(broker.middleware[0]))
    broker.add_middleware(WorkerMetrics(app))  # messages processed and their time, per actor
    dramatiq.set_broker(broker)
    BROKER.set(app, broker)
    return broker


def broker(app=None) -> dramatiq.Broker:
    """This app's broker (default: the current app's)."""
    return BROKER.get(app)


def bind_actors(broker: dramatiq.Broker, actors) -> None:
    """Point actors at this app's broker. `@dramatiq.actor` binds to whichever broker was global at import,
    and every create_app (tests make many) builds a new one."""
    for actor in actors:
        actor.broker = broker
        broker.declare_actor(actor)
