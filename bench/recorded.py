"""Recorded voices outside FSDD through a LOSO run's six fold models, at chosen rules.

    python -m bench.recorded --reports DIR [--max-unknown 0.05 0.14 1.0]

`python -m bench` scores the shipped model on these voices; this scores a training
experiment's fold models (`digitd-train evaluate --loso --reports DIR` writes them), none of
which heard any of these voices, so two runs can be compared on real people before either
is fitted. Each --max-unknown is a p(unknown) limit tried with the best-probability floor of
--min-confidence (default: the run's calibrated one); the run's own calibrated rule is always
printed first. Pooled over the fold models: Allison Smith's digits right (ten a model) and
her non-digit words taken for digits, KLettres' letters and syllables taken (each language
weighing the same), and FSDD's held-out men's digits right at the same rule.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from digitd.daemon.model import DigitClassifier, RejectionRule

from bench import material


def probabilities(models: list[Path], digits, words, letters) -> dict[str, np.ndarray]:
    """Each clip's class probabilities under each model (the runtime's path: trim, features,
    test-time speeds), stacked model after model."""
    out: dict[str, list[np.ndarray]] = {}
    for path in models:
        classifier = DigitClassifier(path)

        def score(waves, c=classifier):
            return np.stack([c.utterance_probabilities(w) for w in waves])

        out.setdefault("digits", []).append(score([w for _, w in digits]))
        if words:
            out.setdefault("words", []).append(score(words))
        for language, clips in letters.items():
            out.setdefault(f"letters {language}", []).append(score(clips))
    return {k: np.concatenate(v) for k, v in out.items()}


def rates(rule: RejectionRule, probs: dict[str, np.ndarray], truth: np.ndarray,
          labels: tuple[str, ...]) -> dict[str, float]:
    said = rule.digits(probs["digits"], labels)
    out = {"allison_digits_right": int(np.sum(said == truth)),
           "allison_digits": int(truth.size)}
    if "words" in probs:
        out["allison_words_taken"] = float(np.mean(rule.digits(probs["words"], labels) >= 0))
    letters = [k for k in probs if k.startswith("letters ")]
    if letters:
        out["klettres_taken"] = float(np.mean(
            [np.mean(rule.digits(probs[k], labels) >= 0) for k in letters]))
    return out


def fsdd_heldout(reports: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """FSDD's held-out digits (probabilities, truth) from the run's saved fold predictions,
    None where the run saved none."""
    from digitd.train.evaluate import conditions, saved_folds

    try:
        probs, truth, _ = conditions(saved_folds(reports))["clean"]
    except (FileNotFoundError, KeyError, ValueError):
        return None
    return probs, truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recorded", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=Path,
                        default=Path(__file__).resolve().parent.parent / "reports")
    parser.add_argument("--max-unknown", type=float, nargs="*", default=[0.05, 0.10, 1.0])
    parser.add_argument("--min-confidence", type=float, default=None)
    args = parser.parse_args(argv)
    report_path = args.reports / "loso.json"
    models = sorted((args.reports / "loso").glob("fold-*.tflite"))
    if not report_path.is_file() or not models:
        print(f"bench.recorded: no LOSO run in {args.reports} (loso.json and loso/fold-*."
              "tflite; digitd-train evaluate --loso writes them)", file=sys.stderr)
        return 2
    report = json.loads(report_path.read_text())
    digits, words = material.allison()
    letters, unreadable = material.klettres_clips()
    if not digits and not letters:
        print("bench.recorded: neither asterisk-core-sounds-en-wav nor klettres-data is "
              "installed (scripts/install-system-packages)", file=sys.stderr)
        return 2
    labels = DigitClassifier(models[0]).metadata.labels
    probs = probabilities(models, digits, words, letters)
    truth = np.tile([d for d, _ in digits], len(models))
    floor = (args.min_confidence if args.min_confidence is not None
             else report["threshold"])
    rules = [("calibrated", RejectionRule(report["threshold"], report["unknown_threshold"]))]
    rules += [(f"p(unknown) < {u:g}", RejectionRule(floor, u)) for u in args.max_unknown]
    print(f"{args.reports}: {len(models)} fold models; Allison Smith {len(digits)} digits, "
          f"{len(words)} words; KLettres {sum(map(len, letters.values()))} clips in "
          f"{len(letters)} languages ({unreadable} unreadable)")
    print("| rule | Allison's digits right | her words taken | KLettres taken | "
          "FSDD held-out right |")
    print("|---|---|---|---|---|")
    heldout = fsdd_heldout(args.reports)
    for name, rule in rules:
        r = rates(rule, probs, truth, labels)
        fsdd = (None if heldout is None
                else float(np.mean(rule.digits(heldout[0], labels) == heldout[1])))
        print(f"| {name} (best >= {rule.min_confidence:.2f}, p(unknown) < "
              f"{rule.max_unknown:.2f}) | {r['allison_digits_right']} of "
              f"{r['allison_digits']} | {r.get('allison_words_taken', float('nan')):.1%} | "
              f"{r.get('klettres_taken', float('nan')):.1%} | "
              + (f"{fsdd:.1%}" if fsdd is not None else "-") + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
