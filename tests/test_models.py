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


def test_bench_float_copy_is_built_from_the_models_training_settings(tmp_path):
    """The bench times a float copy of the shipped architecture; it must be the architecture
    the model's metadata records (training.config), not a default."""
    pytest.importorskip("tensorflow")
    import json
    import shutil

    from digitd.daemon.features import FeatureConfig
    from digitd.daemon.model import default_model_path, load_interpreter, metadata_path_for

    from bench.cost import float_tflite

    model = tmp_path / "m.tflite"
    shutil.copy(default_model_path(), model)
    meta = json.loads(metadata_path_for(default_model_path()).read_text())
    meta["training"]["config"].update(width=24, first_pool=[1, 2])
    metadata_path_for(model).write_text(json.dumps(meta))

    interpreter = load_interpreter(float_tflite(model, tmp_path / "float.tflite"))
    shapes = {tuple(int(n) for n in t["shape"]) for t in interpreter.get_tensor_details()}
    frames, mels = FeatureConfig.from_dict(meta["features"]).shape
    assert (1, frames, mels // 2, 24) in shapes  # block0 at width 24 on the (1, 2) grid
    assert not any(len(s) == 4 and s[-1] == 96 for s in shapes)  # not the default width


def test_towers_are_an_ensemble_averaged_in_one_model():
    import numpy as np
    from digitd.train.models import build_model, training_outputs

    model = build_model((61, 40), 11, width=8, towers=2)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 61, 40, 1)).astype(np.float32)
    each = training_outputs(model, 2).predict(x, verbose=0)
    assert len(each) == 2
    assert not np.allclose(each[0], each[1])  # initialized apart
    assert np.allclose(model.predict(x, verbose=0), (each[0] + each[1]) / 2, atol=1e-6)
    single = build_model((61, 40), 11, width=8)
    assert training_outputs(single, 1) is single
    assert single.get_layer("probabilities") is single.layers[-1]  # a single tower's names kept
    with pytest.raises(ValueError, match="towers must be at least 1"):
        build_model((61, 40), 11, width=8, towers=0)


def test_training_fits_every_tower(fsdd_dir, tmp_path):
    import numpy as np
    from digitd.train.config import quick_config
    from digitd.train.data import load_fsdd
    from digitd.train.dataset import build_corpus
    from digitd.train.models import build_model, tower_name
    from digitd.train.train import seed_everything, train_model

    cfg = quick_config(towers=2, epochs=2, width=8, cache_dir=tmp_path)
    corpus = build_corpus(load_fsdd(fsdd_dir, 8000, limit_per_class=1), cfg)
    trained = train_model(corpus, cfg)
    seed_everything(cfg.seed)  # as train_model starts: the same initial weights
    initial = build_model(cfg.features.shape, 11, cfg.width, cfg.dropout, cfg.first_pool, 2)
    for i in range(2):
        name = f"{tower_name(i)}probabilities"
        assert not np.allclose(trained.get_layer(name).get_weights()[0],
                               initial.get_layer(name).get_weights()[0])


def test_gradient_reversal_is_identity_forward_and_negates_gradients():
    pytest.importorskip("tensorflow")
    import numpy as np
    import tensorflow as tf
    from digitd.train.models import GradientReversal

    layer = GradientReversal()
    x = tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3))
    for strength in (0.0, 0.7):
        layer.strength.assign(strength)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        assert np.array_equal(y.numpy(), x.numpy())
        # d(sum y^2)/dx = 2x, reversed and scaled
        assert np.allclose(tape.gradient(loss, x).numpy(), -strength * 2 * x.numpy())


def test_masked_voice_loss_ignores_examples_that_are_not_speech():
    import numpy as np
    from digitd.train.models import masked_voice_loss

    target = np.array([[1.0], [0.0], [-1.0], [-1.0]], dtype=np.float32)
    p = np.array([[0.9], [0.2], [0.01], [0.99]], dtype=np.float32)
    loss = np.asarray(masked_voice_loss(target, p))
    assert np.allclose(loss, [-np.log(0.9), -np.log(0.8), 0.0, 0.0], atol=1e-5)


def test_domain_adversarial_training_fits_the_voice_head_and_exports_the_plain_model(
        fsdd_dir, tmp_path, caplog, monkeypatch):
    """FSDD's recorded men and one synthetic voice: the voice head is trained (its weights
    move) with the reversal ramped up, and the model returned for export has one output."""
    import logging

    import numpy as np
    from digitd.train import synth
    from digitd.train.config import quick_config
    from digitd.train.data import load_fsdd
    from digitd.train.dataset import build_corpus
    from digitd.train.train import train_model

    if not synth.engine_available("espeak"):
        pytest.skip("espeak-ng not installed")
    monkeypatch.setattr(synth, "default_voices", lambda seed: [synth.Voice("espeak", "en-us")])
    monkeypatch.setattr(synth, "NON_DIGIT_WORDS", ["garden", "window"])
    cfg = quick_config(epochs=3, width=8, cache_dir=tmp_path, use_tts=True,
                       domain_adversarial=1.0)
    corpus = build_corpus(load_fsdd(fsdd_dir, 8000, limit_per_class=1), cfg)
    assert sum(corpus.digit_recorded) == corpus.fsdd_count > 0
    with caplog.at_level(logging.INFO, logger="digitd.train.train"):
        model = train_model(corpus, cfg)
    assert len(model.outputs) == 1 and model.outputs[0].shape[-1] == 11
    assert all(not layer.name.startswith("voice") for layer in model.layers)
    head_losses = [r.getMessage() for r in caplog.records if "voice-head loss" in r.getMessage()]
    assert len(head_losses) == cfg.epochs
    assert all(np.isfinite(float(m.split()[-1])) for m in head_losses)
    with pytest.raises(ValueError, match="towers == 1"):
        train_model(corpus, quick_config(domain_adversarial=1.0, towers=2))
