"""Learning-rate schedules that Keras does not have."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="digitd")
class CosineThenConstant(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine decay from `initial` to floor_fraction * initial over decay_steps, then flat:
    SWA's schedule, whose flat end lets the averaged snapshots spread over the minimum."""

    def __init__(self, initial: float, decay_steps: int, floor_fraction: float) -> None:
        if initial <= 0 or decay_steps < 0 or not 0 < floor_fraction <= 1:
            raise ValueError(f"bad schedule: initial {initial}, decay_steps {decay_steps}, "
                             f"floor_fraction {floor_fraction}")
        self.initial, self.decay_steps, self.floor_fraction = initial, decay_steps, floor_fraction

    def __call__(self, step):
        progress = ops.minimum(ops.cast(step, "float32") / max(1, self.decay_steps), 1.0)
        floor = self.initial * self.floor_fraction
        return floor + (self.initial - floor) * 0.5 * (1.0 + ops.cos(math.pi * progress))

    def get_config(self) -> dict:
        return {"initial": self.initial, "decay_steps": self.decay_steps,
                "floor_fraction": self.floor_fraction}
