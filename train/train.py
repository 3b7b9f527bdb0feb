"""Fit the classifier head on cached embeddings.

The embedding network is frozen (its weights are Google's); only the head learns. Every
rendered copy of every training clip is one example; the loss weighs "not a digit" against
the ten digits by TrainConfig.unknown_share, whatever the counts. TrainConfig.heads heads
are trained from different seeds and shipped averaged.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import replace

import numpy as np

from .config import TrainConfig
from .models import average_heads, build_head

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    import keras

    keras.utils.set_random_seed(seed)


def example_weights(y: np.ndarray, corpora: np.ndarray, unknown: int, cfg: TrainConfig
                    ) -> np.ndarray:
    """Per-example loss weights: "not a digit" carries cfg.unknown_share of the total; the
    digits the rest, split between corpora by cfg.digit_shares (a corpus absent gives its
    share to the others) and within a corpus equally per digit. Mean 1."""
    w = np.zeros(y.size, dtype=np.float64)
    is_unknown = y == unknown
    if is_unknown.any():
        w[is_unknown] = cfg.unknown_share / is_unknown.sum()
    shares = {c: s for c, s in cfg.digit_shares if np.any(~is_unknown & (corpora == c))}
    others = ~is_unknown & ~np.isin(corpora, list(shares))
    if others.any() or not shares:  # digits of a corpus without a share: one more part
        shares[None] = 1.0 / max(1, len(cfg.digit_shares))
    total = sum(shares.values())
    digit_share = (1 - cfg.unknown_share) if is_unknown.any() else 1.0
    for corpus, share in shares.items():
        in_corpus = ~is_unknown & (others if corpus is None else corpora == corpus)
        labels = np.unique(y[in_corpus])
        for d in labels:
            mask = in_corpus & (y == d)
            w[mask] = digit_share * share / total / len(labels) / mask.sum()
    return (w * (y.size / w.sum())).astype(np.float32)


def train_head(x: np.ndarray, y: np.ndarray, corpora: np.ndarray, n_classes: int,
               cfg: TrainConfig, desc: str = "head"):
    """x (n, embeddings, 96), y (n,) class indices, the corpus of each -> one Keras network:
    cfg.heads heads, each from its own seed, their probabilities averaged."""
    heads = [_train_one(x, y, corpora, n_classes, replace(cfg, seed=cfg.seed + 101 * k),
                        f"{desc}/{k}") for k in range(cfg.heads)]
    return average_heads(heads, x.shape[1], x.shape[2])


def _train_one(x: np.ndarray, y: np.ndarray, corpora: np.ndarray, n_classes: int,
               cfg: TrainConfig, desc: str):
    import keras
    from tqdm.keras import TqdmCallback

    seed_everything(cfg.seed)
    model = build_head(x.shape[1], x.shape[2], n_classes, cfg.width, cfg.dropout)
    steps = max(1, -(-len(x) // cfg.batch_size)) * cfg.epochs
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"])
    targets = keras.utils.to_categorical(y, n_classes)
    weights = example_weights(y, corpora, n_classes - 1, cfg)
    model.fit(x.astype(np.float32), targets, sample_weight=weights, epochs=cfg.epochs,
              batch_size=cfg.batch_size, shuffle=True, verbose=0,
              callbacks=[TqdmCallback(verbose=0, desc=desc, leave=False)])
    return model
