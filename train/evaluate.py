"""How the recipe does on voices and words it never heard: folds, calibration, reports.

Every fold holds out, at once: one of FSDD's six speakers, a sixth of the Speech Commands
speakers, a sixth of the TTS voices, and a sixth of the non-digit word types (so false accepts
are measured on words training never heard). A separate set of TTS voices ("voices") is never
trained on. Each fold trains a head, exports it to int8 and scores its held-out clips through
the runtime path (int8 embedding, int8 head, at each of TrainConfig.test_speeds, averaged),
exactly as `digitd recognize --whole` would. The rejection rule is calibrated on those
held-out scores.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from digitd.daemon.model import (
    MODEL_FILENAME,
    ModelMetadata,
    RejectionRule,
    Stage,
    head_inputs,
    lead_samples,
)

from .config import TrainConfig
from .data import SPEAKERS
from .dataset import LABELS, UNKNOWN, Embedded, Material

log = logging.getLogger(__name__)

# (name, corpus) of each digit condition, (name, corpus, held-out word types only?) of each
# non-digit one
DIGIT_CONDITIONS = (("FSDD", "fsdd"), ("Speech Commands", "sc"), ("unseen TTS voices", "voices"))
WORD_CONDITIONS = (
    ("real people, held-out word types", "sc", True),
    ("digit-like words, held-out types, unseen voices", "voices", True),
    ("real people, trained word types, unseen speakers", "sc", False),
    ("digit-like words, unseen voices", "voices", False),
)
# What the rule is calibrated on: people's words no fold heard. The TTS voices' digit-like
# words are reported, not calibrated on: a floor strict enough to turn most of them away
# (0.72 took 21% of them, for 6 points of real people's digits) misses digits people say.
CALIBRATION_WORDS = ("real people, held-out word types",)


def stable_fold(name: str, folds: int) -> int:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % folds


def assign_folds(material: Material, folds: int) -> tuple[np.ndarray, np.ndarray]:
    """(speaker fold, word-type fold) of every clip; -1: in every fold's training (noise) or
    not a word type (digits)."""
    speaker_fold = np.empty(len(material), dtype=int)
    word_fold = np.full(len(material), -1)
    for i, (speaker, corpus) in enumerate(zip(material.speakers, material.corpora,
                                              strict=True)):
        if corpus == "noise":
            speaker_fold[i] = -1
        elif corpus == "fsdd":
            speaker_fold[i] = SPEAKERS.index(speaker.split(":", 1)[1]) % folds
        else:
            speaker_fold[i] = stable_fold(speaker, folds)
        if material.labels[i] == UNKNOWN and corpus != "noise":
            word_fold[i] = stable_fold("word:" + material.words[i], folds)
    return speaker_fold, word_fold


def train_mask(material: Material, speaker_fold: np.ndarray, word_fold: np.ndarray,
               fold: int) -> np.ndarray:
    corpora = np.array(material.corpora)
    return (speaker_fold != fold) & (word_fold != fold) & (corpora != "voices")


def clean_mels(material: Material, cfg: TrainConfig, clips: np.ndarray, phases: int,
               speed: float = 1.0) -> np.ndarray:
    """Copy 0 of each clip (what `recognize --whole` computes), as mel windows with the
    lead the embedding grids read, the word played at `speed`."""
    from digitd.daemon.features import window_mel

    lead = lead_samples(cfg.features, phases)
    return np.stack([window_mel(material.waves[i], cfg.features, lead=lead, speed=speed)
                     for i in clips])


def runtime_embeddings(embedding_file: Path, mels: np.ndarray, batch: int = 64) -> np.ndarray:
    """The int8 embedding stage over whole windows, as the daemon runs it: every vector."""
    stage = Stage(embedding_file, (None, mels.shape[2], 1))
    return np.concatenate([stage(np.ascontiguousarray(mels[i : i + batch, ..., None],
                                                      dtype=np.float32))
                           for i in range(0, len(mels), batch)])


def float_embeddings(mels: np.ndarray, phases: int) -> np.ndarray:
    """The float embedding network over the same windows: every vector."""
    from .embedding import build_embedding

    model = build_embedding(mels.shape[2], phases=phases)
    return model.predict(mels[..., None].astype(np.float32), batch_size=64, verbose=0)


def grid_mean(predict, vectors: np.ndarray, phases: int, cfg: TrainConfig) -> np.ndarray:
    """Probabilities of windows' vectors (n, m, 96): `predict` on each grid, averaged, as
    the daemon decides a word (model.head_inputs)."""
    return np.mean([predict(x) for x in head_inputs(vectors, phases, cfg.features)], axis=0)


def head_probabilities(head_file: Path, embeddings: np.ndarray) -> np.ndarray:
    stage = Stage(head_file, embeddings.shape[1:])
    return np.concatenate([stage(embeddings[i : i + 1].astype(np.float32))
                           for i in range(len(embeddings))])


@dataclass
class Heldout:
    """Held-out probabilities of every clip, each from the fold that did not train on it."""

    int8: np.ndarray  # (clips, labels); NaN rows: never held out (noise)
    float: np.ndarray  # the float networks on the same windows
    augmented: np.ndarray  # float head on an augmented copy (copy 1), where there is one
    speaker_fold: np.ndarray
    word_fold: np.ndarray

    def held_type(self) -> np.ndarray:
        return self.word_fold == self.speaker_fold


def run_folds(material: Material, embedded: Embedded, cfg: TrainConfig, work: Path
              ) -> Heldout:
    """Train, export and score every fold; fold K's two stages go to work/fold-K/."""
    from tqdm import tqdm

    from .export import (
        EMBEDDING_FILENAME,
        EMBEDDING_PHASES,
        HEAD_FILENAME,
        embedding_tflite,
        to_int8_tflite,
    )
    from .train import train_head

    speaker_fold, word_fold = assign_folds(material, cfg.folds)
    n = len(material)
    out = Heldout(*(np.full((n, len(LABELS)), np.nan) for _ in range(3)), speaker_fold,
                  word_fold)
    heldout = np.flatnonzero(speaker_fold >= 0)
    phases = EMBEDDING_PHASES
    rng = np.random.default_rng(cfg.seed)
    work.mkdir(parents=True, exist_ok=True)
    embedding_file = work / EMBEDDING_FILENAME
    picks = heldout[rng.permutation(len(heldout))[:400]]
    embedding_file.write_bytes(embedding_tflite(clean_mels(material, cfg, picks, phases),
                                                phases))
    # Each held-out clip's vectors at each test speed: (speeds, clips, vectors, 96)
    shape = (len(cfg.test_speeds), n, cfg.features.head_embeddings * phases, 96)
    runtime = np.full(shape, np.nan, dtype=np.float32)
    exact = np.full_like(runtime, np.nan)
    for k, speed in enumerate(cfg.test_speeds):
        mels = clean_mels(material, cfg, heldout, phases, speed)
        runtime[k, heldout] = runtime_embeddings(embedding_file, mels)
        exact[k, heldout] = float_embeddings(mels, phases)
        del mels
    labels, corpora = np.array(material.labels), np.array(material.corpora)
    for fold in tqdm(range(cfg.folds), desc="folds", leave=False):
        rows = embedded.rows(train_mask(material, speaker_fold, word_fold, fold))
        head = train_head(embedded.x[rows], labels[embedded.clip[rows]],
                          corpora[embedded.clip[rows]], len(LABELS), cfg,
                          desc=f"fold {fold + 1}/{cfg.folds}")
        test = speaker_fold == fold
        clips = np.flatnonzero(test)
        out.float[clips] = np.mean([grid_mean(partial(head.predict, verbose=0, batch_size=1024),
                                              vectors[clips], phases, cfg) for vectors in exact],
                                   axis=0)
        augmented = embedded.rows(test, "augmented")
        augmented = augmented[embedded.copy[augmented] == 1]
        if len(augmented):
            out.augmented[embedded.clip[augmented]] = head.predict(
                embedded.x[augmented].astype(np.float32), verbose=0, batch_size=1024)
        head_file = work / f"fold-{fold}" / HEAD_FILENAME
        head_file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(embedding_file, head_file.parent / EMBEDDING_FILENAME)
        head_file.write_bytes(to_int8_tflite(head, embedded.x[rows[rng.permutation(
            len(rows))[:400]]].astype(np.float32)))
        out.int8[clips] = np.mean([grid_mean(partial(head_probabilities, head_file),
                                             vectors[clips], phases, cfg)
                                   for vectors in runtime], axis=0)
    return out


def rates(rule: RejectionRule, probs: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """right / wrong / rejected shares of digit clips, or accepted share of non-digit clips."""
    decided = rule.digits(probs, LABELS) if len(probs) else np.zeros(0, dtype=int)
    if len(truth) and truth[0] == UNKNOWN:
        return {"n": int(len(truth)), "accepted": float(np.mean(decided >= 0))}
    return {"n": int(len(truth)),
            "right": float(np.mean(decided == truth)) if len(truth) else float("nan"),
            "wrong": float(np.mean((decided >= 0) & (decided != truth))) if len(truth) else 0.0,
            "rejected": float(np.mean(decided < 0)) if len(truth) else 0.0,
            "argmax": float(np.mean(np.argmax(probs, axis=1) == truth)) if len(truth) else 0.0}


def condition_sets(material: Material, held: Heldout, which: str = "int8"
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Condition name -> (probabilities, truth) of its held-out clips."""
    probs = getattr(held, which)
    labels, _, corpora, _ = material.arrays()
    ok = ~np.isnan(probs[:, 0])
    out = {}
    for name, corpus in DIGIT_CONDITIONS:
        mask = ok & (corpora == corpus) & (labels < UNKNOWN)
        out[name] = (probs[mask], labels[mask])
    for name, corpus, held_types in WORD_CONDITIONS:
        mask = ok & (corpora == corpus) & (labels == UNKNOWN)
        mask &= held.held_type() if held_types else ~held.held_type()
        out[name] = (probs[mask], labels[mask])
    return out


def calibrate(sets: dict[str, tuple[np.ndarray, np.ndarray]], false_accept_cost: float
              ) -> tuple[RejectionRule, float]:
    """The rule minimizing, over held-out conditions that weigh the same, cost x (digits
    printed wrongly + non-digit clips accepted: both digits nobody said) + digits rejected."""
    digit_sets = [sets[name] for name, _ in DIGIT_CONDITIONS if len(sets[name][1])]
    word_sets = [sets[name] for name in CALIBRATION_WORDS if len(sets[name][1])]
    best: tuple[float, RejectionRule] | None = None
    for max_unknown in [*np.round(np.arange(0.02, 0.52, 0.02), 2), 1.0]:
        for min_confidence in np.round(np.arange(0.0, 0.96, 0.02), 2):
            rule = RejectionRule(float(min_confidence), float(max_unknown))
            cost = np.mean([false_accept_cost * r["wrong"] + r["rejected"]
                            for r in (rates(rule, *s) for s in digit_sets)])
            if word_sets:
                cost += np.mean([false_accept_cost * rates(rule, *s)["accepted"]
                                 for s in word_sets])
            if best is None or cost < best[0] - 1e-12:
                best = (float(cost), rule)
    assert best is not None
    return best[1], best[0]


def trade(sets: dict[str, tuple[np.ndarray, np.ndarray]], rule: RejectionRule
          ) -> list[dict[str, Any]]:
    """What other limits would give, one changed and the other kept: digits right and
    non-digit clips taken, per condition (the README's tables)."""
    rules = [RejectionRule(rule.min_confidence, m)
             for m in sorted({0.05, 0.1, 0.2, 0.3, 0.5, 1.0, rule.max_unknown})]
    rules += [RejectionRule(c, rule.max_unknown)
              for c in sorted({0.3, 0.5, 0.7, 0.8, 0.9, rule.min_confidence})]
    rows = []
    for other in rules:
        row: dict[str, Any] = {"max_unknown": other.max_unknown,
                               "min_confidence": other.min_confidence}
        for name, (probs, truth) in sets.items():
            if len(truth):
                r = rates(other, probs, truth)
                row[name] = r.get("right", r.get("accepted"))
        rows.append(row)
    return rows


def confusion(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Rows: true digit 0-9; columns: 0-9 and rejected."""
    out = np.zeros((10, 11), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        out[t, p if p >= 0 else 10] += 1
    return out


def summarize(material: Material, held: Heldout, rule: RejectionRule, cost: float,
              cfg: TrainConfig) -> dict[str, Any]:
    sets = condition_sets(material, held)
    report: dict[str, Any] = {"rule": rule.to_dict(), "calibration_cost": round(cost, 4),
                              "folds": cfg.folds, "conditions": {}, "fsdd_speakers": {}}
    for name, (probs, truth) in sets.items():
        report["conditions"][name] = rates(rule, probs, truth)
    for name, (probs, truth) in condition_sets(material, held, "float").items():
        report["conditions"][name]["float_argmax" if truth.size and truth[0] < UNKNOWN
                                   else "float_accepted"] = (
            rates(rule, probs, truth).get("argmax", rates(rule, probs, truth).get("accepted")))
    for name, (probs, truth) in condition_sets(material, held, "augmented").items():
        if truth.size:
            report["conditions"][name]["augmented"] = rates(rule, probs, truth)
    labels, speakers, corpora, _ = material.arrays()
    ok = ~np.isnan(held.int8[:, 0])
    for speaker in SPEAKERS:
        mask = ok & (speakers == f"fsdd:{speaker}")
        if mask.any():
            report["fsdd_speakers"][speaker] = rates(rule, held.int8[mask], labels[mask])
    digits = ok & (labels < UNKNOWN) & (corpora != "voices")
    predicted = rule.digits(held.int8[digits], LABELS)
    report["confusion"] = confusion(labels[digits], predicted).tolist()
    report["trade"] = trade(sets, rule)
    both = ok & ~np.isnan(held.float[:, 0])
    report["int8_agreement"] = float(np.mean(np.argmax(held.int8[both], 1)
                                             == np.argmax(held.float[both], 1)))
    return report


def plot_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    matrix = np.array(report["confusion"])
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(matrix / np.maximum(matrix.sum(1, keepdims=True), 1), cmap="Blues")
    ax.set_xticks(range(11), [*map(str, range(10)), "rej."])
    ax.set_yticks(range(10), list(map(str, range(10))))
    for (r, c), v in np.ndenumerate(matrix):
        if v:
            ax.text(c, r, str(v), ha="center", va="center", fontsize=7)
    ax.set_xlabel("decided")
    ax.set_ylabel("said")
    ax.set_title("Held-out speakers' digits (FSDD + Speech Commands), int8, with rejection")
    fig.tight_layout()
    paths.append(out_dir / "evaluation_confusion.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    names = list(report["conditions"])
    values = [100 * report["conditions"][n].get("right", report["conditions"][n].get(
        "accepted", 0.0)) for n in names]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh(range(len(names)), values,
            color=["tab:green" if "right" in report["conditions"][n] else "tab:red"
                   for n in names])
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v + 0.5, i, f"{v:.1f}%", va="center", fontsize=8)
    ax.set_xlim(0, 110)
    ax.set_xlabel("digits right (green) / non-digit clips taken for a digit (red), %")
    fig.tight_layout()
    paths.append(out_dir / "evaluation_conditions.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def evaluate(material: Material, embedded: Embedded, cfg: TrainConfig, out_dir: Path,
             recalibrate: bool = False) -> dict[str, Any]:
    """Run the folds, calibrate the rule, write reports/evaluation.json and its plots, and
    the fold models (reports/folds/fold-K/digitd.json: the benchmark scores each FSDD
    speaker with the model that never heard them). `recalibrate`: no training, the folds'
    saved held-out predictions (reports/folds/heldout.npz) calibrated again."""
    from .export import EMBEDDING_FILENAME, EMBEDDING_PHASES, HEAD_FILENAME

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    folds = out_dir / "folds"
    saved = folds / "heldout.npz"
    if recalibrate:
        if not saved.is_file():
            raise FileNotFoundError(f"no {saved} to recalibrate from: run the folds first")
        with np.load(saved) as data:
            held = Heldout(*(data[k] for k in ("int8", "float", "augmented", "speaker_fold",
                                               "word_fold")))
        if held.int8.shape[0] != len(material):
            raise ValueError(f"{saved} holds {held.int8.shape[0]} clips, the material "
                             f"{len(material)}: run the folds again")
    else:
        held = run_folds(material, embedded, cfg, folds)
        np.savez(saved, int8=held.int8, float=held.float, augmented=held.augmented,
                 speaker_fold=held.speaker_fold, word_fold=held.word_fold)
    rule, cost = calibrate(condition_sets(material, held), cfg.false_accept_cost)
    for fold in range(cfg.folds):
        held_out = sorted({s.split(":", 1)[1] for s, k in zip(
            material.speakers, held.speaker_fold, strict=True)
            if k == fold and s.startswith("fsdd:")})
        ModelMetadata.write(folds / f"fold-{fold}" / MODEL_FILENAME, LABELS, cfg.features, rule,
                            {"embedding": EMBEDDING_FILENAME, "head": HEAD_FILENAME},
                            fold={"index": fold, "of": cfg.folds, "fsdd_held_out": held_out},
                            embedding_phases=EMBEDDING_PHASES, speeds=list(cfg.test_speeds))
    (folds / EMBEDDING_FILENAME).unlink(missing_ok=True)
    report = summarize(material, held, rule, cost, cfg)
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    report["plots"] = [p.name for p in plot_report(report, out_dir)]
    return report


def load_rule(out_dir: Path) -> RejectionRule | None:
    path = Path(out_dir) / "evaluation.json"
    if not path.is_file():
        return None
    rule = json.loads(path.read_text())["rule"]
    return RejectionRule(rule["min_confidence"], rule["max_unknown"])
