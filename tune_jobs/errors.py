"""SweepError: why a sweep cannot start, raised before anything is trained (exit status 2).

    python -m tune_jobs.main_grid --storage /nonexistent/x     # error: storage ... is not writable

Its own module so that the parts of a sweep that raise it (the runner, the cluster connection, the
options) do not import each other for it.
"""


class SweepError(RuntimeError):
    """A sweep cannot start (storage, cluster address, data, plan); the message says what to do."""
