"""Leave-one-speaker-out evaluation: the honest measure of accuracy on a voice never heard.

For each FSDD speaker: train on the other five (plus synthetic voices), export int8, and
test the float and int8 models on the held-out speaker's 500 files and on non-digit
material the fold never saw (held-out words in every synthetic voice, noise, tones).
The pooled held-out predictions calibrate the rejection threshold shipped with the model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from digitd.daemon.model import DigitClassifier, decide

from . import synth
from .config import TrainConfig
from .data import SPEAKERS, Utterances
from .dataset import (
    LABELS,
    UNKNOWN,
    Corpus,
    build_corpus,
    clean_features,
    tts_clips,
    unknown_waveform,
)
from .export import to_int8_tflite, write_model
from .train import train_model

log = logging.getLogger(__name__)


@dataclass
class FoldResult:
    speaker: str
    truth: np.ndarray  # digit labels of the held-out speaker's files
    float_probs: np.ndarray
    int8_probs: np.ndarray
    negative_float: np.ndarray  # probabilities on held-out non-digit material
    negative_int8: np.ndarray


def heldout_negatives(fsdd_test: Utterances, cfg: TrainConfig, fold: int) -> list[np.ndarray]:
    """Non-digit material no fold trained on: held-out words, noise, tones, clicks."""
    waves = []
    if cfg.use_tts:
        waves += [w for _, text, w in tts_clips(cfg, sorted(synth.HELDOUT_WORDS))]
    rng = np.random.default_rng([cfg.seed, 999, fold])
    babble_source = Corpus(digit_waves=fsdd_test.waves)  # babble from the held-out voice
    n_noise = 0
    while n_noise < 200:
        wave, speechy = unknown_waveform(babble_source, cfg.features.sample_rate, rng)
        if not speechy:  # keep only the noise, tone and click kinds
            waves.append(wave)
            n_noise += 1
    return waves


def int8_probabilities(model_path: Path, features: np.ndarray) -> np.ndarray:
    classifier = DigitClassifier(model_path)
    return np.stack([classifier.probabilities(f[:, :, 0]) for f in features])


def run_fold(fsdd: Utterances, speaker: str, cfg: TrainConfig, out_dir: Path,
             fold: int) -> FoldResult:
    train_mask = np.array([s != speaker for s in fsdd.speakers])
    train_set, test_set = fsdd.subset(train_mask), fsdd.subset(~train_mask)
    corpus = build_corpus(train_set, cfg, heldout_words=True)
    log.info("fold %s: %s", speaker, corpus.summary())
    model = train_model(corpus, cfg, desc=f"fold {speaker}")
    test_x = clean_features(test_set.waves, cfg)
    negatives = clean_features(heldout_negatives(test_set, cfg, fold), cfg)
    representative = clean_features(train_set.waves, cfg)
    rng = np.random.default_rng(cfg.seed)
    representative = representative[rng.permutation(len(representative))[
        : cfg.representative_samples]]
    tflite = to_int8_tflite(model, representative)
    path = write_model(
        tflite, out_dir / f"fold-{speaker}.tflite", labels=LABELS,
        features=cfg.features.to_dict(), threshold=0.0, threshold_note="fold model",
        train_config=cfg.to_dict(), data_hash="", loso=None,
    )
    result = FoldResult(
        speaker=speaker,
        truth=np.array(test_set.digits),
        float_probs=model.predict(test_x, verbose=0, batch_size=256),
        int8_probs=int8_probabilities(path, test_x),
        negative_float=model.predict(negatives, verbose=0, batch_size=256),
        negative_int8=int8_probabilities(path, negatives),
    )
    log.info("fold %s: int8 arg-max accuracy %.2f%%, float %.2f%%", speaker,
             100 * np.mean(np.argmax(result.int8_probs, 1) == result.truth),
             100 * np.mean(np.argmax(result.float_probs, 1) == result.truth))
    return result


def decisions(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Predicted digit per row, -1 where rejected."""
    out = [decide(p, LABELS, threshold).digit for p in probs]
    return np.array([-1 if d is None else d for d in out])


def false_accept_rate(probs: np.ndarray, threshold: float) -> float:
    return float(np.mean(decisions(probs, threshold) >= 0)) if len(probs) else 0.0


def calibrate_threshold(folds: list[FoldResult], false_accept_cost: float
                        ) -> tuple[float, str]:
    """The threshold in [0.30, 0.95] minimizing, on the pooled held-out int8 predictions,
    false_accept_cost x (share of non-digit clips accepted as digits) + (share of held-out
    speakers' digits not recognized, rejections included)."""
    negatives = np.concatenate([f.negative_int8 for f in folds])
    probs = np.concatenate([f.int8_probs for f in folds])
    truth = np.concatenate([f.truth for f in folds])
    grid = np.round(np.arange(0.3, 0.96, 0.01), 2)
    costs = [false_accept_cost * false_accept_rate(negatives, float(t))
             + float(np.mean(decisions(probs, float(t)) != truth)) for t in grid]
    threshold = float(grid[int(np.argmin(costs))])
    note = (f"threshold in [0.30, 0.95] minimizing {false_accept_cost:g} x false-accept rate "
            f"on {len(negatives)} held-out non-digit clips + digit error rate on "
            f"{len(truth)} held-out-speaker files, int8, pooled over {len(folds)} LOSO folds")
    return threshold, note


def confusion(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """10 x 11 counts: rows truth digit, columns predicted digit or rejected (last)."""
    matrix = np.zeros((10, 11), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        matrix[t, p if p >= 0 else 10] += 1
    return matrix


def summarize(folds: list[FoldResult], threshold: float, note: str) -> dict[str, Any]:
    per_speaker: dict[str, Any] = {}
    for f in folds:
        fl, q = decisions(f.float_probs, threshold), decisions(f.int8_probs, threshold)
        per_speaker[f.speaker] = {
            "files": int(f.truth.size),
            "float_accuracy": float(np.mean(fl == f.truth)),
            "int8_accuracy": float(np.mean(q == f.truth)),
            "int8_argmax_accuracy": float(np.mean(np.argmax(f.int8_probs, 1) == f.truth)),
            "int8_rejected": float(np.mean(q < 0)),
            "int8_float_agreement": float(np.mean(
                np.argmax(f.int8_probs, 1) == np.argmax(f.float_probs, 1))),
            "nondigit_false_accept_int8": false_accept_rate(f.negative_int8, threshold),
        }
    truth = np.concatenate([f.truth for f in folds])
    int8_pred = np.concatenate([decisions(f.int8_probs, threshold) for f in folds])
    negatives = np.concatenate([f.negative_int8 for f in folds])
    neg_argmax_unknown = float(np.mean(np.argmax(negatives, 1) == UNKNOWN))

    def stat(key: str) -> dict[str, float]:
        values = [s[key] for s in per_speaker.values()]
        return {"mean": float(np.mean(values)), "worst": float(np.min(values))}

    return {
        "threshold": threshold,
        "threshold_calibration": note,
        "per_speaker": per_speaker,
        "float_accuracy": stat("float_accuracy"),
        "int8_accuracy": stat("int8_accuracy"),
        "int8_float_agreement": float(np.mean([s["int8_float_agreement"]
                                               for s in per_speaker.values()])),
        "nondigit_rejection_rate_int8": 1.0 - false_accept_rate(negatives, threshold),
        "nondigit_argmax_unknown_rate_int8": neg_argmax_unknown,
        "nondigit_clips": int(len(negatives)),
        "confusion_int8": confusion(truth, int8_pred).tolist(),
        "confusion_columns": [*map(str, range(10)), "rejected"],
    }


def plot_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    matrix = np.array(report["confusion_int8"])
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(matrix / np.maximum(matrix.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if count > matrix.sum(1)[i] * 0.5 else "black")
    ax.set_xticks(range(11), report["confusion_columns"])
    ax.set_yticks(range(10), [str(d) for d in range(10)])
    ax.set_xlabel("predicted (int8, with rejection)")
    ax.set_ylabel("spoken digit")
    ax.set_title("LOSO confusion matrix, all six held-out speakers")
    fig.tight_layout()
    paths.append(out_dir / "loso_confusion.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    speakers = list(report["per_speaker"])
    fig, ax = plt.subplots(figsize=(8, 4))
    xs = np.arange(len(speakers))
    for offset, key, label in ((-0.2, "float_accuracy", "float"), (0.2, "int8_accuracy", "int8")):
        values = [report["per_speaker"][s][key] * 100 for s in speakers]
        ax.bar(xs + offset, values, width=0.4, label=label)
    ax.set_xticks(xs, speakers)
    ax.set_ylim(min(50, min(report["per_speaker"][s]["int8_accuracy"] * 100
                            for s in speakers) - 5), 100)
    ax.set_ylabel("accuracy on the held-out speaker (%)")
    ax.set_title("Leave-one-speaker-out accuracy per speaker")
    ax.legend(loc="lower right")
    fig.tight_layout()
    paths.append(out_dir / "loso_speakers.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


FOLD_ARRAYS = ("truth", "float_probs", "int8_probs", "negative_float", "negative_int8")


def report_folds(folds: list[FoldResult], cfg: TrainConfig, out_dir: Path) -> dict[str, Any]:
    """Calibrate the threshold on the folds, write it into the fold models, and write
    loso.json, the raw predictions and the plots."""
    threshold, note = calibrate_threshold(folds, cfg.false_accept_cost)
    for f in folds:  # fold models carry the calibrated rule too (the benchmarks use them)
        meta_path = out_dir / "loso" / f"fold-{f.speaker}.json"
        meta = json.loads(meta_path.read_text())
        meta["rejection"].update(threshold=threshold, calibration=note)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    report = summarize(folds, threshold, note)
    report["config"] = cfg.to_dict()
    (out_dir / "loso.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    np.savez(out_dir / "loso" / "predictions.npz",
             **{f"{f.speaker}_{k}": getattr(f, k) for f in folds for k in FOLD_ARRAYS})
    plot_report(report, out_dir)
    return report


def run_loso(fsdd: Utterances, cfg: TrainConfig, out_dir: Path,
             speakers: list[str] | None = None) -> dict[str, Any]:
    from tqdm import tqdm

    out_dir = Path(out_dir)
    (out_dir / "loso").mkdir(parents=True, exist_ok=True)
    speakers = speakers or [s for s in SPEAKERS if s in set(fsdd.speakers)]
    folds = [run_fold(fsdd, s, cfg, out_dir / "loso", i)
             for i, s in enumerate(tqdm(speakers, desc="LOSO folds", unit="fold"))]
    return report_folds(folds, cfg, out_dir)


def recalibrate(cfg: TrainConfig, out_dir: Path) -> dict[str, Any]:
    """Redo calibration and the report from saved fold predictions, without training."""
    out_dir = Path(out_dir)
    saved = np.load(out_dir / "loso" / "predictions.npz")
    speakers = [s for s in SPEAKERS if f"{s}_truth" in saved]
    folds = [FoldResult(s, *(saved[f"{s}_{k}"] for k in FOLD_ARRAYS)) for s in speakers]
    return report_folds(folds, cfg, out_dir)
