"""One progress bar over a whole command: every run's steps, the run under way, the time left.

The experiments train many runs quietly, one after another; a user would wait minutes with
nothing on screen.  ``Progress`` draws one tqdm bar over the steps of all of them (on stderr,
only on a terminal unless told otherwise), labelled with the run under way, and routes the
experiment's log lines around the bar so that neither garbles the other.
"""

from __future__ import annotations

import sys


class Progress:
    """A bar over ``total`` steps; ``enabled=None`` draws it only when stderr is a terminal."""

    def __init__(self, total, *, enabled=None, log=None):
        enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self._log = log
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)

    def run(self, label):
        """The run that starts now (shown beside the bar)."""
        if self.bar is not None:
            self.bar.set_description(label)

    def step(self, loss=None):
        """One training step done (``Trainer(on_step=...)``)."""
        if self.bar is not None:
            self.bar.update(1)

    def log(self, line):
        """Print a line of the experiment's log above the bar."""
        if self._log is None:
            return
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            self._log(line)

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
