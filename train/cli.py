"""digitd-train: build digitd's model from real recordings and ship it.

  digitd-train fit                 evaluate on held-out speakers and words, calibrate the
                                   rejection rule, train on everything, export models/
  digitd-train evaluate            only the evaluation: reports/evaluation.json and plots
                                   (--recalibrate: the rule again, from saved predictions)
  digitd-train download            fetch and verify FSDD (when ../shared is not beside you)

The model is Google's speech embedding (frozen; its weights come from the pyopen-wakeword
wheel, Apache-2.0) and a small head trained here on FSDD, Speech Commands (real people, many
microphones) and local TTS voices, including words that sound like digits. Rendered and
embedded material is cached in ~/.cache/digitd, so a second run starts training at once.
`--quick` is a smoke run of a few minutes on a sliver of the data.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from digitd.daemon.heap import keep_freed_memory

from .config import TrainConfig, quick_config
from .data import (
    FSDD_ATTRIBUTION,
    FSDD_URL,
    SPEECH_COMMANDS_ATTRIBUTION,
    DataError,
    default_data_dir,
    default_speech_commands_dir,
    download,
    load_fsdd,
    load_speech_commands,
    user_data_dir,
)

log = logging.getLogger("digitd.train")


def make_config(args: argparse.Namespace) -> TrainConfig:
    cfg = quick_config() if args.quick else TrainConfig()
    overrides = {"fsdd": args.data, "speech_commands": args.speech_commands,
                 "epochs": args.epochs, "seed": args.seed, "cache_dir": args.cache_dir}
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def load_material(cfg: TrainConfig):
    from .dataset import build_material, embed_material

    rate = cfg.features.sample_rate
    fsdd = load_fsdd(cfg.fsdd or default_data_dir(), rate, cfg.limit_per_class)
    sc = load_speech_commands(cfg.speech_commands or default_speech_commands_dir(), rate,
                              cfg.limit_per_class and cfg.limit_per_class * 10)
    material = build_material(cfg, fsdd, sc)
    return material, embed_material(material, cfg)


def print_report(report: dict) -> None:
    for name, row in report["conditions"].items():
        if "right" in row:
            print(f"  {name:52s} {row['right']:7.2%} right ({row['argmax']:.2%} arg-max, "
                  f"{row['rejected']:.2%} rejected) of {row['n']}")
        else:
            print(f"  {name:52s} {row['accepted']:7.2%} taken for a digit of {row['n']}")
    speakers = report["fsdd_speakers"]
    if speakers:
        values = [row["right"] for row in speakers.values()]
        print("  FSDD per speaker: " + ", ".join(f"{s} {r['right']:.1%}"
                                                 for s, r in speakers.items())
              + f"; mean {np.mean(values):.2%}, worst {min(values):.2%}")
    print(f"  rule: {report['rule']['rule']}; int8/float agreement "
          f"{report['int8_agreement']:.2%}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    cfg = make_config(args)
    started = time.time()
    material, embedded = load_material(cfg)
    try:
        report = evaluate(material, embedded, cfg, args.reports, args.recalibrate)
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(str(exc)) from exc
    print_report(report)
    print(f"wrote {args.reports / 'evaluation.json'} in {time.time() - started:.0f} s")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from digitd.daemon.features import window_mel

    from .dataset import LABELS
    from .embedding import ATTRIBUTION
    from .evaluate import evaluate, load_rule
    from .export import embedding_tflite, to_int8_tflite, write_model
    from .train import train_head

    cfg = make_config(args)
    started = time.time()
    material, embedded = load_material(cfg)
    report = None
    if args.no_evaluate:
        rule = load_rule(args.reports)
        if rule is None:
            raise DataError(f"no {args.reports / 'evaluation.json'} to take the rejection rule "
                            "from: run without --no-evaluate")
    else:
        report = evaluate(material, embedded, cfg, args.reports)
        print_report(report)
        rule = load_rule(args.reports)
    trainable = np.array(material.corpora) != "voices"
    rows = embedded.rows(trainable)
    labels = np.array(material.labels)
    corpora = np.array(material.corpora)
    head = train_head(embedded.x[rows], labels[embedded.clip[rows]],
                      corpora[embedded.clip[rows]], len(LABELS), cfg, desc="fit")
    rng = np.random.default_rng(cfg.seed)
    picks = rng.permutation(np.flatnonzero(trainable))[:400]
    mels = np.stack([window_mel(material.waves[i], cfg.features) for i in picks])
    embedding = embedding_tflite(mels)
    head_bytes = to_int8_tflite(head, embedded.x[rows[rng.permutation(len(rows))[:400]]]
                                .astype(np.float32))
    evaluation = report or json.loads((args.reports / "evaluation.json").read_text())
    strings_stage, strings_settings = fit_strings(material, cfg, args.quick)
    path = write_model(
        args.output, embedding, head_bytes, LABELS, cfg, rule, strings_stage,
        strings=strings_settings,
        training={"material": material.summary(), "material_sha256": material.fingerprint(),
                  "config": cfg.to_dict()},
        evaluation={k: evaluation[k] for k in ("conditions", "fsdd_speakers",
                                               "int8_agreement", "calibration_cost")},
        license=("CC BY-SA 4.0 (the head is trained on FSDD, CC BY-SA 4.0, and Speech "
                 "Commands, CC BY 4.0); the embedding network Apache-2.0"),
        attribution=[FSDD_ATTRIBUTION, SPEECH_COMMANDS_ATTRIBUTION, ATTRIBUTION])
    size = sum((args.output / f).stat().st_size for f in json.loads(path.read_text())
               ["files"].values())
    print(f"wrote {path} and its stages ({size} bytes) in {time.time() - started:.0f} s")
    return 0


def fit_strings(material, cfg: TrainConfig, quick: bool) -> tuple[bytes, dict]:
    """The strings stage trained on every string of the material, as int8 TFLite, and its
    settings for the metadata."""
    from dataclasses import asdict

    from digitd.daemon.model import STRING_TOKENS

    from .export import strings_tflite
    from .strings import MAX_TOKENS, StringConfig, embed_strings, quick_strings
    from .train import train_strings

    scfg = quick_strings() if quick else StringConfig()
    strings = embed_strings(material, cfg, scfg)
    net = train_strings(strings, np.ones(len(strings), dtype=bool), len(STRING_TOKENS), scfg,
                        cfg.seed, MAX_TOKENS)
    picks = np.random.default_rng(cfg.seed).permutation(len(strings))[:2000]
    stage = strings_tflite(net, [strings.item(k)[0].astype(np.float32) for k in picks])
    kinds = {str(k): int(n) for k, n in zip(*np.unique(strings.kinds, return_counts=True),
                                             strict=True)}
    return stage, {"tokens": list(STRING_TOKENS), "min_confidence": scfg.min_confidence,
                   "strings": kinds, "config": asdict(scfg),
                   "int8_agreement": int8_agreement(net, stage, strings, picks[:300])}


def int8_agreement(net, stage: bytes, strings, picks: np.ndarray) -> float:
    """Share of strings the int8 TFLite stage reads as the float network does."""
    import tempfile

    from digitd.daemon.model import Stage, StringReading

    from .models import with_softmax

    probabilities = with_softmax(net)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "strings.tflite"
        path.write_bytes(stage)
        int8 = Stage(path, (None, 96))
        same = [StringReading.of(int8(x)[0]).tokens
                == StringReading.of(np.asarray(probabilities(x))[0]).tokens
                for x in (strings.item(int(k))[0][None].astype(np.float32) for k in picks)]
    return float(np.mean(same))


def cmd_download(args: argparse.Namespace) -> int:
    dest = args.dest or user_data_dir()
    download(dest, url=args.url or FSDD_URL)
    print(dest)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="FSDD folder (default: ../shared/data/fsdd beside the checkout, "
                             "else the per-user download)")
    parser.add_argument("--speech-commands", type=Path, default=None,
                        help="Speech Commands folder (default: ../shared/data/speech_commands "
                             "or $DIGITD_SPEECH_COMMANDS)")
    parser.add_argument("--reports", type=Path, default=Path("reports"),
                        help="where evaluation.json and its plots go (default: ./reports)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help=f"TTS and embedding caches (default: {TrainConfig.cache_dir})")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"head training epochs (default: {TrainConfig.epochs})")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--quick", action="store_true",
                        help="a sliver of the data, few epochs: a smoke run in minutes")
    parser.add_argument("-v", "--verbose", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digitd-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="evaluate, calibrate, train on everything, export")
    _common(p)
    p.add_argument("--output", type=Path, default=Path("models"),
                   help="folder for digitd.json and its two TFLite stages (default: models)")
    p.add_argument("--no-evaluate", action="store_true",
                   help="skip the folds; take the rule from an earlier reports/evaluation.json")
    p.set_defaults(func=cmd_fit)
    p = sub.add_parser("evaluate", help="held-out speakers and word types; calibrate the rule")
    _common(p)
    p.add_argument("--recalibrate", action="store_true",
                   help="no training: calibrate the rule again from the folds' saved held-out "
                        "predictions (reports/folds/heldout.npz)")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("download", help="fetch and verify the pinned FSDD release")
    p.add_argument("--dest", type=Path, default=None, help=f"default: {user_data_dir()}")
    p.add_argument("--url", default=None, help="another address of the same release archive")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    keep_freed_memory()  # the embedding of every clip allocates as the daemon's words do
    try:
        return args.func(args)
    except DataError as exc:
        print(f"digitd-train: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
