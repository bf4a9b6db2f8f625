"""Entry point for `dramatiq worker` processes: builds the app (which sets the broker), then the actor modules.

    dramatiq --processes 2 --threads 4 worker
"""
from app import create_app
from tickets.broker import broker as broker_of

app = create_app()
broker = broker_of(app)
