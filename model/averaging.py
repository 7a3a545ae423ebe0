"""Stochastic weight averaging: the mean of the weights visited at a constant rate.

After the cosine schedule has settled, a few more epochs at a small constant
learning rate walk around the minimum instead of sitting at one edge of it;
the mean of the points visited lies nearer its centre, where a new writer's
slightly different digit still lands on the right side (Izmailov et al. 2018,
"Averaging Weights Leads to Wider Optima and Better Generalization"). The
network has no batch normalisation, so the mean needs no statistics
recomputed: it is the model.
"""
import numpy as np


class WeightAverage:
    """Running mean of state dicts, in float64 so a dozen float32 snapshots
    add up without rounding drift; read back as float32."""

    def __init__(self):
        self.count = 0
        self._sums = None

    def add(self, state):
        if self._sums is None:
            self._sums = {name: np.zeros(value.shape, dtype=np.float64) for name, value in state.items()}
        for name, value in state.items():
            self._sums[name] += value
        self.count += 1

    def mean(self):
        if not self.count:
            raise ValueError("no weights were averaged")
        return {name: (total / self.count).astype(np.float32) for name, total in self._sums.items()}


def snapshot_every(steps_per_epoch, per_epoch):
    """Steps between snapshots so that each epoch gives `per_epoch` of them
    (at least one step apart), the last one on the epoch's last step."""
    return max(1, steps_per_epoch // max(1, per_epoch))
