"""Two segmenter settings side by side on the same audio, with the same fold models.

    python -m bench.segmenter_ab '{"release_db": 90, "onset_db": 0}' --block-ms-a 20

A is the JSON of SegmenterSettings overrides (and its microphone block size); B is the
daemon's defaults. Streams as in `python -m bench` (each held-out speaker x white, pink and
babble from voices training never used, at 20 and 10 dB) plus the digits emitted per hour of
audio with no digit in it. Prints two tables: digit error rate, p95 latency and false digits;
then what became of the spoken words, so a miss is put on the segmenter (no segment, too long)
or on the model (not a digit).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from digitd.daemon.segmenter import SegmenterSettings

from bench import material
from bench.cost import REPO
from bench.recognizers import Digitd
from bench.run import BenchConfig, digits_per_hour, fold_models
from bench.scoring import StreamScore, score_stream, word_outcomes

OUTCOMES = ("right", "wrong digit", "not a digit", "too long", "no segment")


def measure(label: str, segmenter: SegmenterSettings, block_ms: int | None, fsdd, babble,
            reports: Path, words: int) -> dict:
    scores: dict = {}
    outcomes: dict = {}
    folds, _ = fold_models(reports)
    for k, speaker in enumerate(material.SPEAKERS):
        waves, digits = material.of_speaker(fsdd, speaker)
        recognizer = Digitd(folds[speaker], segmenter, block_ms)
        for kind in ("white", "pink", "babble"):
            for snr in (20, 10):
                stream = material.digit_stream(
                    "ab", waves, digits, words, snr, kind, babble, seed=1000 * k + snr + 7,
                    level_spread_db=BenchConfig.stream_level_spread_db)
                emitted, heard = recognizer.stream_heard(stream.samples)
                score = score_stream(stream.truth, emitted)
                outcomes.setdefault(snr, Counter()).update(word_outcomes(stream.truth, heard))
                for key in ((kind, snr), ("all", snr)):
                    scores.setdefault(key, StreamScore(latencies_ms=[])).add(score)
    false = digits_per_hour([Digitd(None, segmenter, block_ms)],
                            BenchConfig.non_digit_seconds, babble)["digitd"]
    return {"label": label, **{f"{kind} {snr} dB": s.summary() for (kind, snr), s in
                               scores.items()}, "false digits per hour": false,
            "outcomes": outcomes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="JSON of SegmenterSettings overrides for A")
    parser.add_argument("--block-ms-a", type=int, default=None)
    parser.add_argument("--words", type=int, default=30, help="digits per stream")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "fsdd")
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "digitd" / "synth")
    args = parser.parse_args(argv)
    fsdd = material.load_fsdd(args.data)
    babble = material.unseen_speech(None, args.cache)
    rows = [measure(f"A {args.a}", SegmenterSettings(**json.loads(args.a)), args.block_ms_a,
                    fsdd, babble, args.reports, args.words),
            measure("B defaults", SegmenterSettings(), None, fsdd, babble, args.reports,
                    args.words)]
    print("| | DER 20 dB | white | pink | babble | p95 latency 20 dB | DER 10 dB "
          "| false digits/h noise/tones/speech |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        der = {k: f"{r[k]['digit_error_rate']:.1%}" for k in r if k.endswith("dB")}
        fd = r["false digits per hour"]
        print(f"| {r['label']} | {der['all 20 dB']} | {der['white 20 dB']} | {der['pink 20 dB']} "
              f"| {der['babble 20 dB']} | {r['all 20 dB']['latency_ms_p95']:.0f} ms "
              f"| {der['all 10 dB']} | {fd['noise']:.0f}/{fd['tones']:.0f}/{fd['speech']:.0f} |")
    print()
    print("| spoken words | " + " | ".join(OUTCOMES) + " |")
    print("|---|" + "---|" * len(OUTCOMES))
    for r in rows:
        for snr, counts in sorted(r["outcomes"].items(), reverse=True):
            n = sum(counts.values())
            print(f"| {r['label'].split(' ')[0]}, {snr} dB | "
                  + " | ".join(f"{counts[o] / n:.1%}" for o in OUTCOMES) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
