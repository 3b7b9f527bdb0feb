"""The shipped model on synthetic voices it never trained on.

  python bench/unseen_voices.py [--model PATH]

espeak-ng voice variants that training never uses (women's and men's), each saying the ten
digits and words that are not digits (training's held-out words plus words training never
saw), classified whole-file by the runtime path. A rough, legal stand-in for unseen real
speakers: the digits' accuracy and the share of non-digit words turned into digits.
Writes reports/unseen_voices.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digitd.daemon.features import extract  # noqa: E402
from digitd.daemon.model import DigitClassifier  # noqa: E402
from digitd.train import synth  # noqa: E402

# Variants absent from synth.default_voices(); accents from its list.
UNSEEN = ["+Alicia", "+Andrea", "+anika", "+grandma", "+shelby", "+steph", "+whisperf",
          "+Andy", "+Diogo", "+Henrique", "+john", "+max", "+michel", "+norbert", "+rob",
          "+travis"]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-029"]
# Words that no training run ever heard.
NEW_WORDS = ["banana", "pencil", "window", "garage", "doctor", "yellow", "basket", "silver",
             "music", "paper", "monkey", "ticket", "planet", "rocket", "button", "coffee"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "unseen_voices.json")
    args = parser.parse_args()
    classifier = DigitClassifier(args.model)
    rng = np.random.default_rng(0)
    voices = [synth.Voice("espeak", accent + variant, float(rng.uniform(0.85, 1.15)),
                          int(rng.integers(30, 80)))
              for accent in ACCENTS for variant in UNSEEN]
    words = sorted(set(synth.HELDOUT_WORDS) | (set(NEW_WORDS) - set(synth.NON_DIGIT_WORDS)))
    rate = classifier.features.sample_rate
    digits = synth.synthesize(voices, list(synth.DIGIT_WORDS), rate)
    others = synth.synthesize(voices, words, rate)

    def decide(wave):
        return classifier.classify(extract(wave, classifier.features)).digit

    digit_results = [(synth.DIGIT_WORDS.index(text), decide(w)) for _, text, w in digits]
    word_results = [decide(w) for _, _, w in others]
    result = {
        "model": str(classifier.model_path),
        "voices": len(voices),
        "digit_clips": len(digit_results),
        "digit_accuracy": float(np.mean([t == p for t, p in digit_results])),
        "digit_rejected": float(np.mean([p is None for _, p in digit_results])),
        "nondigit_clips": len(word_results),
        "nondigit_false_accept": float(np.mean([p is not None for p in word_results])),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
