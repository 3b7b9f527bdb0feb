"""A small, fast end-to-end training run: material, embeddings, folds, calibration, the
exported two-stage int8 model in LiteRT agreeing with the Keras networks."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def quick_fit(fsdd_dir, speech_commands, tmp_path_factory):
    from digitd.train import cli

    root = tmp_path_factory.mktemp("fit")
    args = ["fit", "--quick", "--epochs", "4", "--data", str(fsdd_dir),
            "--speech-commands", str(speech_commands), "--reports", str(root / "reports"),
            "--output", str(root / "model"), "--cache-dir", str(root / "cache")]
    assert cli.main(args) == 0
    return root


@pytest.mark.slow
def test_quick_fit_writes_the_evaluation_and_its_plots(quick_fit):
    report = json.loads((quick_fit / "reports" / "evaluation.json").read_text())
    for name in ("FSDD", "Speech Commands", "unseen TTS voices"):
        row = report["conditions"][name]
        assert row["n"] > 0 and abs(row["right"] + row["wrong"] + row["rejected"] - 1) < 1e-9
    for name in ("real people, held-out word types",
                 "digit-like words, held-out types, unseen voices"):
        assert report["conditions"][name]["n"] > 0
        assert 0.0 <= report["conditions"][name]["accepted"] <= 1.0
    assert set(report["fsdd_speakers"]) <= {"george", "jackson", "lucas", "nicolas", "theo",
                                            "yweweler"}
    assert np.array(report["confusion"]).shape == (10, 11)
    assert 0.0 <= report["rule"]["min_confidence"] <= 0.95
    assert 0.02 <= report["rule"]["max_unknown"] <= 1.0
    for name in ("evaluation_confusion.png", "evaluation_conditions.png"):
        assert (quick_fit / "reports" / name).stat().st_size > 5000


@pytest.mark.slow
def test_exported_model_runs_in_litert_and_agrees_with_keras(quick_fit, fsdd_dir,
                                                             speech_commands):
    from digitd.daemon.features import window_mel
    from digitd.daemon.model import DigitClassifier, RejectionRule
    from digitd.train.data import load_fsdd
    from digitd.train.embedding import build_embedding

    meta = json.loads((quick_fit / "model" / "digitd.json").read_text())
    assert meta["format"] == "digitd-model/2"
    assert meta["labels"] == [*map(str, range(10)), "unknown"]
    assert any("CC BY 4.0" in a for a in meta["attribution"])  # Speech Commands
    assert any("Apache" in a for a in meta["attribution"])  # the speech embedding
    assert "CC BY-SA 4.0" in meta["license"]
    assert meta["speeds"] == list(meta["training"]["config"]["test_speeds"])
    report = json.loads((quick_fit / "reports" / "evaluation.json").read_text())
    assert RejectionRule(**{k: report["rule"][k] for k in ("min_confidence", "max_unknown")}) \
        == DigitClassifier(quick_fit / "model" / "digitd.json").metadata.rejection

    classifier = DigitClassifier(quick_fit / "model" / "digitd.json")  # LiteRT, the runtime
    keras_embedding = build_embedding()
    fsdd = load_fsdd(fsdd_dir, 16000, limit_per_class=1)
    mels = np.stack([window_mel(w, classifier.features) for w in fsdd.waves[:20]])
    float_vectors = np.asarray(keras_embedding(mels[..., None]))
    int8_vectors = np.stack([classifier.embeddings(m) for m in mels])
    cosine = np.sum(float_vectors * int8_vectors, -1) / (
        np.linalg.norm(float_vectors, axis=-1) * np.linalg.norm(int8_vectors, axis=-1))
    assert cosine.mean() > 0.98, f"int8 embedding drifts from float: {cosine.mean():.3f}"
    probs = np.stack([classifier.head(v[None])[0] for v in int8_vectors])
    assert probs.shape == (20, 11) and np.allclose(probs.sum(1), 1.0, atol=0.05)


@pytest.mark.slow
def test_a_fold_model_decides_its_held_out_clips_as_the_evaluation_scored_them(
        quick_fit, fsdd_dir, speech_commands):
    # The benchmark runs the fold models through the daemon's path: it must be the path
    # the evaluation measured and calibrated (window, both embedding grids, int8 stages).
    from digitd.daemon.model import DigitClassifier
    from digitd.train.cli import build_parser, load_material, make_config

    args = build_parser().parse_args(["evaluate", "--quick", "--data", str(fsdd_dir),
                                      "--speech-commands", str(speech_commands),
                                      "--cache-dir", str(quick_fit / "cache")])
    material, _ = load_material(make_config(args))
    with np.load(quick_fit / "reports" / "folds" / "heldout.npz") as saved:
        scored, speaker_fold = saved["int8"], saved["speaker_fold"]
    classifier = DigitClassifier(quick_fit / "reports" / "folds" / "fold-0" / "digitd.json")
    assert classifier.metadata.speeds == make_config(args).test_speeds  # scored at each
    clips = np.flatnonzero(speaker_fold == 0)[:: 7][:12]
    assert len(clips) >= 6
    for i in clips:
        got = classifier.classify_utterance(material.waves[i]).probabilities
        assert np.allclose(got, scored[i], atol=1e-6), (material.speakers[i], got, scored[i])


@pytest.mark.slow
def test_the_strings_stage_is_exported_and_read_as_keras_reads_it(quick_fit, recordings):
    from digitd.daemon.features import FeatureConfig
    from digitd.daemon.model import DigitClassifier

    from .streams import said_together

    meta = json.loads((quick_fit / "model" / "digitd.json").read_text())
    assert meta["files"]["strings"] == "digitd-strings.tflite"
    assert meta["strings"]["tokens"] == ["blank", *map(str, range(10)), "unknown"]
    assert meta["strings"]["int8_agreement"] >= 0.8
    assert set(meta["strings"]["strings"]) == {"joined", "fluent"}
    classifier = DigitClassifier(quick_fit / "model" / "digitd.json")
    speech = said_together(recordings, ["4_jackson_0.wav", "2_theo_0.wav"], lead=0, tail=0)
    reading = classifier.read_string(speech.astype(np.float64), FeatureConfig().pad_dbfs)
    assert reading is not None and len(reading.tokens) == len(reading.confidences) <= 8


@pytest.mark.slow
def test_a_second_run_embeds_nothing_again(quick_fit, fsdd_dir, speech_commands):
    from digitd.train.cli import build_parser, load_material, make_config

    args = build_parser().parse_args(["evaluate", "--quick", "--data", str(fsdd_dir),
                                      "--speech-commands", str(speech_commands),
                                      "--cache-dir", str(quick_fit / "cache")])
    caches = sorted((quick_fit / "cache").glob("embeddings-*.npz"))
    assert len(caches) == 1
    stamp = caches[0].stat().st_mtime_ns
    material, embedded = load_material(make_config(args))
    assert caches[0].stat().st_mtime_ns == stamp  # read, not written
    assert embedded.x.shape[1:] == (16, 96) and embedded.clip.max() == len(material) - 1


@pytest.mark.slow
def test_recalibrating_from_saved_predictions_gives_the_same_report(quick_fit, fsdd_dir,
                                                                    speech_commands):
    from digitd.train import cli

    path = quick_fit / "reports" / "evaluation.json"
    before = json.loads(path.read_text())
    args = ["evaluate", "--quick", "--recalibrate", "--data", str(fsdd_dir),
            "--speech-commands", str(speech_commands), "--reports", str(quick_fit / "reports"),
            "--cache-dir", str(quick_fit / "cache")]
    assert cli.main(args) == 0
    after = json.loads(path.read_text())
    assert after["rule"] == before["rule"] and after["conditions"] == before["conditions"]
    assert cli.main([*args[:-4], "--reports", str(quick_fit / "nothing"),
                     "--cache-dir", str(quick_fit / "cache")]) == 2  # nothing saved there


def test_strings_of_several_lengths_train_whatever_the_first_batches_are():
    """The strings stage's batches hold strings of one length each; training must take a
    batch of another length after two of one length (a Keras PyDataset fixed its shapes
    from its first two batches and stopped there)."""
    from digitd.train.strings import StringConfig, Strings
    from digitd.train.train import StringBatches, train_strings

    rng = np.random.default_rng(0)
    lengths = [8] * 20 + [12] * 2
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    tokens = rng.integers(1, 11, size=2 * len(lengths)).astype(np.int32)
    strings = Strings(rng.normal(size=(offsets[-1], 96)).astype(np.float16), offsets, tokens,
                      np.arange(0, tokens.size + 1, 2), np.array(["joined"] * len(lengths)))
    keep = np.ones(len(lengths), dtype=bool)
    first = StringBatches(strings, keep, 2, seed=3, max_tokens=10)
    sizes = [strings.item(first.batches[i][0])[0].shape[0] for i in range(len(first))]
    assert sizes[0] == sizes[1] and 12 in sizes[2:]  # the case that failed
    scfg = StringConfig(width=8, layers=1, epochs=2, batch_size=2)
    net = train_strings(strings, keep, 12, scfg, seed=3, max_tokens=10)
    assert net.predict(strings.item(20)[0][None].astype(np.float32), verbose=0).shape == (1, 12, 12)
