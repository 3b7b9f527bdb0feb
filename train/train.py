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
    model = build_head(x.shape[1], x.shape[2], n_classes, cfg.width, cfg.dropout,
                       cfg.input_dropout)
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


def ctc_loss(y_true, logits):
    """CTC over a batch of equally long strings; y_true holds tokens 1.. then 0 padding."""
    import tensorflow as tf

    labels = tf.cast(y_true, tf.int32)
    label_length = tf.reduce_sum(tf.cast(labels > 0, tf.int32), axis=1)
    logit_length = tf.fill([tf.shape(logits)[0]], tf.shape(logits)[1])
    return tf.nn.ctc_loss(labels=labels, logits=logits, label_length=label_length,
                          logit_length=logit_length, logits_time_major=False, blank_index=0)


class StringBatches:
    """Batches of strings of one length each (features.string_audio makes few lengths),
    shuffled anew every epoch: batch i of the current epoch is self[i]."""

    def __init__(self, strings, keep: np.ndarray, batch_size: int, seed: int,
                 max_tokens: int) -> None:
        self.strings, self.keep, self.batch_size = strings, keep, batch_size
        self.seed, self.max_tokens = seed, max_tokens
        self.lengths = np.diff(strings.offsets)
        self.epoch = 0
        self.on_epoch_end()

    def on_epoch_end(self) -> None:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        self.batches = []
        for n in np.unique(self.lengths[self.keep]):
            rows = rng.permutation(np.flatnonzero(self.keep & (self.lengths == n)))
            self.batches += [rows[i : i + self.batch_size]
                             for i in range(0, rows.size, self.batch_size)]
        rng.shuffle(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.batches[i]
        x = np.stack([self.strings.item(k)[0] for k in rows]).astype(np.float32)
        y = np.zeros((rows.size, self.max_tokens), dtype=np.int32)
        for j, k in enumerate(rows):
            tokens = self.strings.item(k)[1]
            y[j, : tokens.size] = tokens
        return x, y


def string_dataset(batches: StringBatches):
    """The batches as a tf.data.Dataset whose time axis is declared of any length. (A Keras
    PyDataset takes its shapes from its first two batches: when both were strings of one
    length, a later batch of another length stopped training.)"""
    import tensorflow as tf

    def epoch():
        for i in range(len(batches)):
            yield batches[i]
        batches.on_epoch_end()

    dim = batches.strings.x.shape[1]
    signature = (tf.TensorSpec((None, None, dim), tf.float32),
                 tf.TensorSpec((None, batches.max_tokens), tf.int32))
    return tf.data.Dataset.from_generator(epoch, output_signature=signature).apply(
        tf.data.experimental.assert_cardinality(len(batches)))


def train_strings(strings, keep: np.ndarray, n_tokens: int, scfg, seed: int,
                  max_tokens: int):
    """The strings network (logits out) fitted with CTC on the strings `keep` marks."""
    import keras
    from tqdm.keras import TqdmCallback

    from .models import build_strings

    seed_everything(seed)
    model = build_strings(strings.x.shape[1], n_tokens, scfg.width, scfg.layers, scfg.dropout)
    batches = StringBatches(strings, keep, scfg.batch_size, seed, max_tokens)
    schedule = keras.optimizers.schedules.CosineDecay(scfg.learning_rate,
                                                      len(batches) * scfg.epochs)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=ctc_loss)
    model.fit(string_dataset(batches), epochs=scfg.epochs, verbose=0, shuffle=False,  # by epoch
              callbacks=[TqdmCallback(verbose=0, desc="strings")])
    return model
