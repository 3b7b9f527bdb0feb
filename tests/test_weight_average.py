"""Weight averaging (train.WeightAverage, SWA): the exported weights are the mean of the last
epochs' weights, batch norm's statistics are measured again for them, and the learning rate
can stay flat while the average gathers (schedule.CosineThenConstant)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("soxr")  # the train extra


def _tiny_model():
    from digitd.train.models import build_model

    return build_model((61, 40), 11, width=8)


def _stem_statistics(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over batches of the stem's per-channel batch mean and variance."""
    import keras

    stem = keras.Model(model.inputs, model.get_layer("stem").output)
    out = stem.predict(x, verbose=0, batch_size=len(x))
    batches = [out[i:i + 32] for i in range(0, len(out), 32)]
    return (np.mean([b.mean(axis=(0, 1, 2)) for b in batches], axis=0),
            np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0))


def test_the_mean_of_snapshots_goes_in_and_batch_norm_is_measured_again():
    from digitd.train.train import WeightAverage

    model = _tiny_model()
    x = np.random.default_rng(3).normal(2.0, 3.0, (96, 61, 40, 1)).astype(np.float32)
    first = [v.numpy().copy() for v in model.trainable_variables]
    average = WeightAverage()
    average.update(model)
    for v in model.trainable_variables:  # a second "epoch": every weight moved by +1
        v.assign(v.numpy() + 1.0)
    average.update(model)
    bn = model.get_layer("stem_bn")
    momentum = bn.momentum
    average.apply(model, x, batch_size=32)
    for v, w in zip(model.trainable_variables, first, strict=True):
        assert np.allclose(v.numpy(), w + 0.5, atol=1e-6)
    mean, variance = _stem_statistics(model, x)
    assert np.allclose(bn.moving_mean.numpy(), mean, atol=1e-4)
    assert np.allclose(bn.moving_variance.numpy(), variance, rtol=1e-3, atol=1e-4)
    assert not np.allclose(mean, 0.0, atol=1e-2)  # so the check above could have failed
    assert bn.momentum == momentum  # fitting afterwards would use the usual momentum


def test_apply_before_any_update_is_an_error():
    from digitd.train.train import WeightAverage

    with pytest.raises(ValueError, match="no weights averaged"):
        WeightAverage().apply(_tiny_model(), np.zeros((4, 61, 40, 1), np.float32), 4)


def test_training_exports_the_mean_of_the_last_epochs(fsdd_dir, tmp_path, monkeypatch):
    from digitd.train import train as train_module
    from digitd.train.config import quick_config
    from digitd.train.data import load_fsdd
    from digitd.train.dataset import build_corpus

    snapshots: list[list[np.ndarray]] = []
    update = train_module.WeightAverage.update

    def recording_update(self, model):
        snapshots.append([v.numpy().copy() for v in model.trainable_variables])
        update(self, model)

    monkeypatch.setattr(train_module.WeightAverage, "update", recording_update)
    cfg = quick_config(epochs=3, average_epochs=2, width=8, cache_dir=tmp_path)
    corpus = build_corpus(load_fsdd(fsdd_dir, 8000, limit_per_class=1), cfg)
    model = train_module.train_model(corpus, cfg)
    assert len(snapshots) == 2  # the last two epochs only
    assert not np.allclose(snapshots[0][0], snapshots[1][0])  # they differ, so a mean shows
    for v, a, b in zip(model.trainable_variables, *snapshots, strict=True):
        assert np.allclose(v.numpy(), (a + b) / 2, atol=1e-6)


def test_average_epochs_is_set_from_the_command_line(capsys):
    from digitd.train import cli
    from digitd.train.config import TrainConfig

    parse = cli.build_parser().parse_args
    assert cli.make_config(parse(["fit"])).average_epochs == TrainConfig.average_epochs
    cfg = cli.make_config(parse(["evaluate", "--loso", "--average-epochs", "10"]))
    assert cfg.average_epochs == 10
    assert cli.main(["fit", "--quick", "--average-epochs", "-1"]) == 2
    assert "--average-epochs must be at least 0" in capsys.readouterr().err
    assert cli.main(["fit", "--quick", "--epochs", "4", "--average-epochs", "5"]) == 2
    assert "--average-epochs must be at most the epochs (4)" in capsys.readouterr().err


def test_the_swa_schedule_decays_to_its_floor_by_the_first_averaged_epoch_and_stays():
    from digitd.train.config import TrainConfig
    from digitd.train.train import learning_rate_schedule

    cfg = TrainConfig(epochs=10, average_epochs=4, average_learning_rate=0.1,
                      learning_rate=1e-3)
    schedule = learning_rate_schedule(cfg, steps_per_epoch=5)
    rate = [float(schedule(step)) for step in range(50)]
    assert rate[0] == pytest.approx(1e-3)
    assert rate[15] == pytest.approx(1e-4 + 0.9e-3 * 0.5, rel=1e-5)  # halfway through decay
    assert all(a > b for a, b in zip(rate[:30], rate[1:31], strict=True))  # decays ...
    assert rate[30:] == pytest.approx([1e-4] * 20)  # ... then flat while the average gathers
    # without a floor it is the cosine decay over the whole run, as before
    plain = learning_rate_schedule(TrainConfig(epochs=10, learning_rate=1e-3), 5)
    assert float(plain(49)) < float(plain(30)) < 1e-3


def test_swa_settings_that_cannot_work_are_refused(capsys):
    from digitd.train import cli
    from digitd.train.config import TrainConfig
    from digitd.train.schedule import CosineThenConstant
    from digitd.train.train import train_model

    with pytest.raises(ValueError, match="bad schedule"):
        CosineThenConstant(1e-3, 10, 0.0)
    # a config built in code is checked before any training: corpus is never reached
    with pytest.raises(ValueError, match="average_learning_rate needs average_epochs"):
        train_model(None, TrainConfig(average_learning_rate=0.1))
    with pytest.raises(ValueError, match="average_epochs must be in 0..epochs"):
        train_model(None, TrainConfig(epochs=4, average_epochs=5))
    assert cli.main(["fit", "--quick", "--average-lr", "0.1"]) == 2
    assert "--average-lr needs --average-epochs" in capsys.readouterr().err
    assert cli.main(["fit", "--quick", "--average-epochs", "2", "--average-lr", "2"]) == 2
    assert "--average-lr must be in [0, 1]" in capsys.readouterr().err
    parse = cli.build_parser().parse_args
    cfg = cli.make_config(parse(["fit", "--average-epochs", "10", "--average-lr", "0.1"]))
    assert (cfg.average_epochs, cfg.average_learning_rate) == (10, 0.1)
