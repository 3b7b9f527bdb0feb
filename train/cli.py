"""digitd-train: download FSDD, evaluate leave-one-speaker-out, fit and export the model."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from digitd.daemon.model import RejectionRule

from . import synth
from .config import TrainConfig, quick_config
from .data import (
    FSDD_URL,
    DataError,
    data_hash,
    default_data_dir,
    download,
    load_fsdd,
    user_data_dir,
)
from .prompts import PIECE_PEOPLE

log = logging.getLogger("digitd.train")

# Used only when no LOSO report exists to calibrate from.
DEFAULT_REJECTION = RejectionRule(min_confidence=0.6)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="FSDD folder (default: ../shared/data/fsdd in a checkout, "
                             "else the per-user data dir)")
    parser.add_argument("--reports", type=Path, default=Path("reports"),
                        help="where loso.json and plots go (default: ./reports)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--quick", action="store_true",
                        help="tiny subset, few epochs, no TTS: a smoke test in minutes")
    parser.add_argument("--no-tts", action="store_true", help="train on FSDD only")
    parser.add_argument("--voice-change", type=float, default=None, metavar="P",
                        help="share of speech examples given another pitch and formants "
                             "(Praat's Change gender; default 0, see AugmentConfig)")
    parser.add_argument("--tts-digit-repeats", type=int, default=None, metavar="N",
                        help="each synthetic digit clip N times an epoch (default: "
                             f"{TrainConfig.tts_digit_repeats}, see TrainConfig)")
    parser.add_argument("--towers", type=int, default=None, metavar="N",
                        help="copies of the network averaged in the model (default: "
                             f"{TrainConfig.towers}, see TrainConfig)")
    parser.add_argument("--mixup", type=float, default=None, metavar="ALPHA",
                        help="blend each training example with another, weight from "
                             f"Beta(ALPHA, ALPHA) (default: {TrainConfig.mixup_alpha}; 0 is "
                             "off, see TrainConfig)")
    parser.add_argument("--average-epochs", type=int, default=None, metavar="K",
                        help="export the mean weights of the last K epochs (default: "
                             f"{TrainConfig.average_epochs}, the last epoch's alone)")
    parser.add_argument("--average-lr", type=float, default=None, metavar="F",
                        help="with --average-epochs: the learning rate decays to F times its "
                             "start by the first averaged epoch and stays there (SWA); "
                             f"default {TrainConfig.average_learning_rate}, the cosine decay "
                             "over the whole run")
    parser.add_argument("--prompt-voices", action="store_true",
                        help="also train on the recorded Asterisk prompt voices "
                             "(asterisk-core-sounds-*-wav; off by default, see TrainConfig)")
    parser.add_argument("--real-pieces", type=int, default=None, metavar="N",
                        help="N word-length pieces of each French, Italian and Russian "
                             "Asterisk prompt as non-digit speech by recorded people "
                             f"(default: {TrainConfig.real_pieces}; 0 is off; see TrainConfig)")
    parser.add_argument("--real-people", default=None, metavar="VOICE,...",
                        help="whose prompts --real-pieces cuts: Asterisk voice folders among "
                             f"{', '.join(PIECE_PEOPLE)} (default: "
                             f"{','.join(TrainConfig.real_people)})")
    parser.add_argument("--pieces-at-pauses", action="store_true",
                        help="cut --real-pieces from pause to pause, as whole words, instead "
                             "of at random places (off by default, see TrainConfig)")
    parser.add_argument("--short-words", action="store_true",
                        help="also one-syllable words and letter names as non-digit words "
                             "(synth.SHORT_WORDS; off by default, see TrainConfig)")
    parser.add_argument("--word-list", type=int, default=None, metavar="N",
                        help="also N non-digit words from the system word list "
                             f"({synth.WORD_LIST}; default: {TrainConfig.word_list_words}, "
                             "see TrainConfig)")
    parser.add_argument("--domain-adversarial", type=float, default=None, metavar="W",
                        help="train the features not to tell recorded people from synthetic "
                             "voices, with this reversal strength (default: "
                             f"{TrainConfig.domain_adversarial}, off; see TrainConfig)")
    parser.add_argument("--limit-per-class", type=int, default=None,
                        help="FSDD takes per digit and speaker (default: all)")
    parser.add_argument("--cache", type=Path, default=None, help="cache for synthetic voices")
    parser.add_argument("-v", "--verbose", action="store_true")


def make_config(args: argparse.Namespace) -> TrainConfig:
    cfg = quick_config() if args.quick else TrainConfig()
    cfg.data = args.data
    for name in ("epochs", "seed", "limit_per_class"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if args.no_tts:
        cfg.use_tts = False
    if args.prompt_voices:
        cfg.use_prompt_voices = True
    if args.short_words:
        cfg.short_words = True
    if args.pieces_at_pauses:
        cfg.real_pieces_at_pauses = True
    for name in ("towers", "tts_digit_repeats"):  # counts: at least one
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                flag = "--" + name.replace("_", "-")
                raise DataError(f"{flag} must be at least 1, got {value}")
            setattr(cfg, name, value)
    for name, field in (("word_list", "word_list_words"), ("real_pieces", "real_pieces"),
                        ("average_epochs", "average_epochs")):
        value = getattr(args, name)  # counts that may be zero (off)
        if value is not None:
            if value < 0:
                flag = "--" + name.replace("_", "-")
                raise DataError(f"{flag} must be at least 0, got {value}")
            setattr(cfg, field, value)
    if cfg.average_epochs > cfg.epochs:
        raise DataError(f"--average-epochs must be at most the epochs ({cfg.epochs}), "
                        f"got {cfg.average_epochs}")
    if args.average_lr is not None:
        if not 0.0 <= args.average_lr <= 1.0:
            raise DataError(f"--average-lr must be in [0, 1], got {args.average_lr}")
        if args.average_lr > 0 and not cfg.average_epochs:
            raise DataError("--average-lr needs --average-epochs")
        cfg.average_learning_rate = args.average_lr
    if args.real_people is not None:
        people = tuple(v.strip() for v in args.real_people.split(",") if v.strip())
        unknown = [v for v in people if v not in PIECE_PEOPLE]
        if unknown or not people:  # a voice we cannot credit is never trained on
            raise DataError(f"--real-people takes voices among {', '.join(PIECE_PEOPLE)}; "
                            f"got {args.real_people!r}")
        cfg.real_people = people
    if args.voice_change is not None:
        if not 0.0 <= args.voice_change <= 1.0:
            raise DataError(f"--voice-change must be in [0, 1], got {args.voice_change}")
        cfg.augment = replace(cfg.augment, voice_prob=args.voice_change)
    if args.mixup is not None:
        if not 0.0 <= args.mixup <= 10.0:
            raise DataError(f"--mixup must be in [0, 10], got {args.mixup}")
        cfg.mixup_alpha = args.mixup
    if args.domain_adversarial is not None:
        if not 0.0 <= args.domain_adversarial <= 10.0:
            raise DataError("--domain-adversarial must be in [0, 10], got "
                            f"{args.domain_adversarial}")
        if args.domain_adversarial > 0 and cfg.towers != 1:
            raise DataError("--domain-adversarial works with one tower only")
        cfg.domain_adversarial = args.domain_adversarial
    if args.cache:
        cfg.cache_dir = args.cache
    return cfg


def cmd_download(args: argparse.Namespace) -> int:
    dest = args.dest or user_data_dir()
    download(dest, url=args.url or FSDD_URL)
    print(dest)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import recalibrate, repredict, run_loso

    cfg = make_config(args)
    cfg.false_accept_cost = args.false_accept_cost
    cfg.word_folds = args.word_folds
    started = time.time()
    if args.recalibrate:
        report = recalibrate(cfg, args.reports)
    else:
        fsdd = load_fsdd(cfg.data or default_data_dir(), cfg.features.sample_rate,
                         cfg.limit_per_class)
        report = (repredict(fsdd, cfg, args.reports) if args.repredict
                  else run_loso(fsdd, cfg, args.reports, speakers=args.speakers))
    report_line = (f"LOSO int8 accuracy mean {report['int8_accuracy']['mean']:.2%} worst "
                   f"{report['int8_accuracy']['worst']:.2%}; float mean "
                   f"{report['float_accuracy']['mean']:.2%}; int8/float agreement "
                   f"{report['int8_float_agreement']:.2%}; non-digit rejection "
                   f"{report['nondigit_rejection_rate_int8']:.2%}; rule: "
                   f"{report['rejection_rule']} ({time.time() - started:.0f} s)")
    for speaker, row in report["per_speaker"].items():
        print(f"  {speaker:10s} int8 {row['int8_accuracy']:.2%}  float {row['float_accuracy']:.2%}")
    print(report_line)
    print(f"wrote {args.reports / 'loso.json'}")
    return 0


def loso_results(reports: Path) -> tuple[RejectionRule, str, dict | None]:
    """(rejection rule, how it was calibrated, LOSO summary) from reports/loso.json."""
    path = reports / "loso.json"
    if not path.is_file():
        log.warning("no %s: rejection rule left at %s", path, DEFAULT_REJECTION.describe())
        return DEFAULT_REJECTION, "default: no LOSO report to calibrate from", None
    loso = json.loads(path.read_text())
    summary = {k: loso[k] for k in ("per_speaker", "float_accuracy", "int8_accuracy",
                                    "int8_float_agreement", "nondigit_rejection_rate_int8",
                                    "threshold") if k in loso}
    for k in ("noisy_int8_accuracy", "calibration_rates_int8"):  # newer reports only
        if k in loso:
            summary[k] = loso[k]
    # Reports written before the unknown-class rule have no unknown_threshold.
    rule = RejectionRule(loso["threshold"], loso.get("unknown_threshold", 1.0))
    summary["unknown_threshold"] = rule.max_unknown
    summary["test_time_speeds"] = loso.get("test_time_speeds", [1.0])  # older reports: one pass
    return rule, "from LOSO: " + loso["threshold_calibration"], summary


def cmd_attach_loso(args: argparse.Namespace) -> int:
    """Write the LOSO rejection rule and results into a model's metadata (when fit ran first)."""
    from digitd.daemon.model import metadata_path_for

    from .export import rejection_metadata

    rule, note, loso = loso_results(args.reports)
    if loso is None:
        raise DataError(f"no LOSO report in {args.reports}: run digitd-train evaluate --loso")
    meta_path = metadata_path_for(args.model)
    meta = json.loads(meta_path.read_text())
    meta["rejection"] = rejection_metadata(rule, note)
    # The rule was calibrated on probabilities averaged over these speeds: they go together.
    meta["test_time_speeds"] = loso["test_time_speeds"]
    meta["loso"] = loso
    meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    print(f"{meta_path}: {rule.describe()}; LOSO int8 mean "
          f"{loso['int8_accuracy']['mean']:.2%}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from .dataset import LABELS, build_corpus, clean_features
    from .export import to_int8_tflite, write_model
    from .train import train_model

    cfg = make_config(args)
    started = time.time()
    fsdd = load_fsdd(cfg.data or default_data_dir(), cfg.features.sample_rate, cfg.limit_per_class)
    corpus = build_corpus(fsdd, cfg)
    log.info("fit: %s", corpus.summary())
    model = train_model(corpus, cfg, desc="fit")
    rng = np.random.default_rng(cfg.seed)
    picks = rng.permutation(len(fsdd))[: cfg.representative_samples]
    representative = clean_features([fsdd.waves[i] for i in picks], cfg)
    tflite = to_int8_tflite(model, representative)

    rule, note, loso = loso_results(args.reports)
    write_model(tflite, args.output, labels=LABELS, features=cfg.features.to_dict(),
                rejection=rule, rejection_note=note, train_config=cfg.to_dict(),
                data_hash=data_hash(fsdd), loso=loso,
                test_time_speeds=tuple(loso["test_time_speeds"]) if loso else cfg.test_time_speeds,
                recorded_voices=corpus.recorded_voices)
    if args.keras:
        model.save(args.keras)
    print(f"wrote {args.output} ({len(tflite)} bytes) in {time.time() - started:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digitd-train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="fetch and verify the pinned FSDD release")
    p.add_argument("--dest", type=Path, default=None, help=f"default: {user_data_dir()}")
    p.add_argument("--url", default=None, help="another address of the same release archive")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("evaluate", help="leave-one-speaker-out evaluation")
    _common(p)
    p.add_argument("--loso", action="store_true", required=True,
                   help="leave-one-speaker-out over the FSDD speakers")
    p.add_argument("--speakers", nargs="+", default=None, help="only these held-out speakers")
    p.add_argument("--false-accept-cost", type=float, default=TrainConfig.false_accept_cost,
                   help="rejection calibration: how many missed digits one digit nobody said "
                        "is worth (default: %(default)s)")
    p.add_argument("--word-folds", action="store_true",
                   help="each fold holds out its own share of the non-digit words (every word "
                        "unseen once) instead of the same held-out words in every fold")
    p.add_argument("--recalibrate", action="store_true",
                   help="recompute the rejection rule and report from the saved fold predictions")
    p.add_argument("--repredict", action="store_true",
                   help="score the saved fold models again on the noisy held-out copies and "
                        "the calibration voices, then recalibrate (no training)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("fit", help="train on all speakers and export the int8 model")
    _common(p)
    p.add_argument("--output", type=Path, default=Path("models/digitd.tflite"))
    p.add_argument("--keras", type=Path, default=None, help="also save the float Keras model")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("attach-loso", help="put reports/loso.json's rejection rule and results "
                                           "into an exported model's metadata")
    p.add_argument("--reports", type=Path, default=Path("reports"))
    p.add_argument("--model", type=Path, default=Path("models/digitd.tflite"))
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_attach_loso)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except DataError as exc:
        print(f"digitd-train: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
