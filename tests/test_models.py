"""The spectrogram CNN's shape: what the first pooling keeps, and what it costs in weights."""

from __future__ import annotations

import pytest

pytest.importorskip("keras")


@pytest.mark.parametrize("first_pool", [(1, 2), (2, 1)])
def test_first_pool_keeps_its_axis_whole_with_the_same_weights(first_pool):
    from digitd.train.models import build_model

    frames, mels = 61, 40
    plain = build_model((frames, mels), 11, width=24, first_pool=(2, 2))
    model = build_model((frames, mels), 11, width=24, first_pool=first_pool)
    # pool0 only changes the grid the first block runs on: more multiply-adds, no weights
    assert model.count_params() == plain.count_params()
    assert model.get_layer("block0_pw_relu").output.shape[1:3] == (
        frames // first_pool[0], mels // first_pool[1])
    assert plain.get_layer("block0_pw_relu").output.shape[1:3] == (frames // 2, mels // 2)


def test_training_config_builds_what_it_names():
    from digitd.train.config import TrainConfig

    cfg = TrainConfig()
    assert tuple(cfg.to_dict()["first_pool"]) == cfg.first_pool
