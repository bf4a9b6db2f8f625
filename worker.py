"""Entry point for `dramatiq worker` processes: builds the app (which sets the broker), then the actor modules.

    dramatiq --processes 2 --threads 4 worker
"""
from app import create_app

app = create_app()
broker = app.extensions["banjie.broker"]
