"""SIGTERM as a clean stop: the trainer saves the current step and ends its stage (a preempted
cloud VM or a killed job resumes from there); on several hosts they all agree to stop at the same
step."""

import signal

import jax
import numpy as np
from jax.experimental import multihost_utils


class SigtermFlag:
    """Records SIGTERM (installed only in the main thread); restores the old handler on exit."""

    def __init__(self):
        self.raised, self._old = False, None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: preemption handling is off
            self._old = None
        return self

    def _handle(self, signum, frame):  # noqa: ARG002
        self.raised = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)

    def agreed(self, step_: int, every: int) -> bool:
        """All hosts agree to stop (checked every ``every`` steps when multi-host)."""
        if jax.process_count() == 1:
            return self.raised
        if step_ % max(every, 1):
            return False
        flags = multihost_utils.process_allgather(np.asarray(self.raised))
        return bool(np.any(flags))
