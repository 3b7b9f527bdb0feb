"""Mixup in training: each example blended with another, features and targets by one weight."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("soxr")  # the train extra


def _features(n: int) -> np.ndarray:
    return np.random.default_rng(5).uniform(-1, 1, (n, 6, 4, 1)).astype(np.float32)


def test_alpha_zero_leaves_the_batch_alone():
    from digitd.train.train import mixup

    x, targets = _features(64), np.eye(11, dtype=np.float32)[np.arange(64) % 11]
    mixed_x, mixed_t = mixup(x, targets, 0.0, np.random.default_rng(0))
    assert mixed_x is x and mixed_t is targets


def test_features_and_targets_are_blended_by_the_same_weight():
    from digitd.train.train import mixup

    n = 64
    x = _features(n)
    targets = np.eye(n, dtype=np.float32)  # a class per example: the blend names its partner
    mixed_x, mixed_t = mixup(x, targets, 0.4, np.random.default_rng(1))
    assert mixed_x.shape == x.shape and mixed_t.shape == targets.shape
    assert np.allclose(mixed_t.sum(axis=1), 1.0, atol=1e-6)  # still a distribution
    blended = 0
    for i in range(n):
        lam = float(mixed_t[i, i])
        assert lam >= 0.5 - 1e-6  # each example stays mostly itself
        partner = int(np.argsort(mixed_t[i])[-2]) if lam < 1 - 1e-6 else i
        assert np.allclose(mixed_x[i], lam * x[i] + (1 - lam) * x[partner], atol=1e-5)
        blended += lam < 0.95
    assert blended > n // 4  # alpha 0.4 mixes a good share visibly


def test_mixup_is_set_from_the_command_line(capsys):
    from digitd.train import cli
    from digitd.train.config import TrainConfig

    parse = cli.build_parser().parse_args
    assert cli.make_config(parse(["fit"])).mixup_alpha == TrainConfig().mixup_alpha
    assert cli.make_config(parse(["evaluate", "--loso", "--mixup", "0.3"])).mixup_alpha == 0.3
    assert cli.main(["fit", "--quick", "--mixup", "-1"]) == 2
    assert "--mixup must be in [0, 10]" in capsys.readouterr().err
