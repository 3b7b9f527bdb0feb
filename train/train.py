"""Train one model on a corpus. Reads top to bottom: seed, build, compile, loop over epochs.

Each epoch's augmented features are computed in a background thread while the previous
epoch trains, so the two cores stay busy.
"""

from __future__ import annotations

import logging
import os
import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .config import TrainConfig
from .dataset import LABELS, Corpus, make_epoch

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    import keras

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


def mixup(x: np.ndarray, targets: np.ndarray, alpha: float, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    """Each example blended with a random other one, features and targets alike (Zhang et
    al. 2018). The weight is drawn from Beta(alpha, alpha) and kept >= 0.5, so an example
    stays mostly itself. alpha 0 returns the inputs unchanged."""
    if alpha <= 0:
        return x, targets
    lam = rng.beta(alpha, alpha, size=len(x))
    lam = np.maximum(lam, 1.0 - lam).astype(np.float32)
    other = rng.permutation(len(x))
    mixed_x = lam[:, None, None, None] * x + (1.0 - lam[:, None, None, None]) * x[other]
    mixed_t = lam[:, None] * targets + (1.0 - lam[:, None]) * targets[other]
    return mixed_x.astype(x.dtype), mixed_t.astype(np.float32)


class WeightAverage:
    """Running mean of a model's trainable weights over the last epochs (tail averaging, as
    in SWA: Izmailov et al. 2018): the mean of nearby solutions sits nearer the middle of a
    wide minimum than any one of them, which is what an unheard voice needs. Batch norm's
    running statistics belong to no one snapshot, so apply() measures them again on data."""

    def __init__(self) -> None:
        self.mean: list[np.ndarray] | None = None
        self.count = 0

    def update(self, model) -> None:
        weights = [np.asarray(v.numpy(), dtype=np.float64) for v in model.trainable_variables]
        self.count += 1
        if self.mean is None:
            self.mean = weights
        else:
            self.mean = [m + (w - m) / self.count for m, w in zip(self.mean, weights, strict=True)]

    def apply(self, model, x: np.ndarray, batch_size: int) -> None:
        """Put the mean weights into `model`, then its batch-norm statistics from `x`."""
        if self.mean is None:
            raise ValueError("no weights averaged yet")
        for variable, mean in zip(model.trainable_variables, self.mean, strict=True):
            variable.assign(mean.astype(variable.dtype))
        refresh_batch_norm(model, x, batch_size)


def refresh_batch_norm(model, x: np.ndarray, batch_size: int) -> None:
    """Batch norm's moving mean and variance measured again over `x`: the mean of the batch
    statistics, as in training mode (PyTorch's swa_utils.update_bn does the same). Each
    layer's momentum is set per batch so its moving value is the running mean of them."""
    import keras

    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    try:
        for i, start in enumerate(range(0, len(x), batch_size)):
            for layer in norms:  # new = old * i/(i+1) + batch/(i+1)
                layer.momentum = i / (i + 1)
            model(x[start:start + batch_size], training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum


def learning_rate_schedule(cfg: TrainConfig, steps_per_epoch: int):
    """Cosine decay from cfg.learning_rate over the whole run to 2% of it; or, with
    average_learning_rate set, over the epochs before the averaged ones down to that share of
    it, held there while the average gathers (SWA's constant rate: the snapshots then spread
    over the minimum instead of settling in one point of it)."""
    import keras

    from .schedule import CosineThenConstant

    if cfg.average_learning_rate <= 0:
        return keras.optimizers.schedules.CosineDecay(
            cfg.learning_rate, decay_steps=cfg.epochs * steps_per_epoch, warmup_target=None,
            alpha=0.02)
    return CosineThenConstant(cfg.learning_rate,
                              (cfg.epochs - cfg.average_epochs) * steps_per_epoch,
                              cfg.average_learning_rate)


def train_model(corpus: Corpus, cfg: TrainConfig, desc: str = "train"):
    import keras
    from tqdm import tqdm

    from .models import build_model, masked_voice_loss, training_outputs, with_voice_head

    if not 0 <= cfg.average_epochs <= cfg.epochs:
        raise ValueError(f"average_epochs must be in 0..epochs ({cfg.epochs}), "
                         f"got {cfg.average_epochs}")
    if cfg.average_learning_rate > 0 and not cfg.average_epochs:
        raise ValueError("average_learning_rate needs average_epochs")
    seed_everything(cfg.seed)
    model = build_model(cfg.features.shape, len(LABELS), cfg.width, cfg.dropout,
                        cfg.first_pool, cfg.towers)
    adversarial = cfg.domain_adversarial > 0
    if adversarial and cfg.towers != 1:
        raise ValueError("domain_adversarial needs towers == 1")
    fitted = (with_voice_head(model, len(LABELS)) if adversarial
              else training_outputs(model, cfg.towers))
    n_digits = len(corpus.digit_waves)
    epoch_size = n_digits + int(n_digits * cfg.unknown_fraction / (1 - cfg.unknown_fraction))
    schedule = learning_rate_schedule(cfg, -(-epoch_size // cfg.batch_size))
    criterion = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
    if adversarial:
        losses, metrics = [criterion, masked_voice_loss], [["accuracy"], []]
    else:  # one loss and accuracy per tower
        losses = criterion if cfg.towers == 1 else [criterion] * cfg.towers
        metrics = ["accuracy"] if cfg.towers == 1 else [["accuracy"]] * cfg.towers
    fitted.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay),
        loss=losses, metrics=metrics,  # keywords: the third positional is loss_weights
    )
    average = WeightAverage()
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(make_epoch, corpus, cfg, 0)
        bar = tqdm(range(cfg.epochs), desc=desc, unit="epoch", leave=False)
        for epoch in bar:
            x, y, voice = upcoming.result()
            if epoch + 1 < cfg.epochs:
                upcoming = pool.submit(make_epoch, corpus, cfg, epoch + 1)
            targets = keras.utils.to_categorical(y, len(LABELS))
            x, targets = mixup(x, targets, cfg.mixup_alpha,
                               np.random.default_rng([cfg.seed, 31, epoch]))
            if adversarial:
                # Ganin's ramp: the reversal grows from 0 as the classifier takes shape
                progress = epoch / max(1, cfg.epochs - 1)
                fitted.get_layer("voice_reversal").strength.assign(
                    cfg.domain_adversarial * (2.0 / (1.0 + np.exp(-10.0 * progress)) - 1.0))
                inputs, outputs = [x, targets], [targets, voice.astype(np.float32)[:, None]]
            else:
                inputs, outputs = x, targets if cfg.towers == 1 else [targets] * cfg.towers
            history = fitted.fit(inputs, outputs, batch_size=cfg.batch_size, epochs=1, verbose=0,
                                 shuffle=True)
            # the loss summed over towers; accuracy of the first (each has its own)
            loss = history.history["loss"][-1]
            acc = next(v[-1] for k, v in history.history.items() if k.endswith("accuracy"))
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}")
            log.debug("%s epoch %d loss %.4f acc %.4f", desc, epoch, loss, acc)
            if adversarial:  # near ln 2 = 0.69 when the head cannot tell the voices apart
                log.info("%s epoch %d voice-head loss %.3f", desc, epoch,
                         history.history["voice_loss"][-1])
            if epoch >= cfg.epochs - cfg.average_epochs:
                average.update(model)
    if cfg.average_epochs:  # the last epoch's examples, as augmented, give batch norm's stats
        average.apply(model, x, cfg.batch_size)
    return model
