"""`dramatiq worker` entry of the failure tests: the app's worker (worker.py), with each sweep batch held open
for PAUSE seconds after its steps are acted on and before its commit, so that a test can kill it mid-batch."""
import time

from escalation import sweeper
from worker import app, broker  # noqa: F401  (what `dramatiq worker` needs: the app and its broker)

PAUSE = 1.5


def hold_batches_open(pause: float) -> None:
    """From now on the sweeper waits `pause` seconds between acting on a batch and committing it."""
    act = sweeper._act

    def act_then_wait(*args, **kwargs):
        act(*args, **kwargs)
        time.sleep(pause)

    sweeper._act = act_then_wait


hold_batches_open(PAUSE)
