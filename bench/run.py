"""Regenerate BENCHMARKS.md: digitd and pocketsphinx on the same audio, side by side.

  python -m bench            full run (over an hour on 2 cores: pocketsphinx decodes long
                             noisy streams slowly), writes BENCHMARKS.md and
                             reports/bench/ (results.json, PNG plots, stream truth CSVs)
  python -m bench --quick    a CI-sized run (a few minutes) into reports/bench-quick/;
                             prints its numbers, asserts nothing about them
  python -m bench --reuse-peer   digitd measured afresh, pocketsphinx's figures taken from
                             the last results.json of the same configuration (its audio is
                             the same seeded material): for a new model, minutes instead of
                             an hour
  python -m bench.streams    the streams section alone at full size, digitd only (~1 min)
  python -m bench.strings    the digit-strings section alone, larger than in the full run

FSDD's digits are recognized by the fold models in reports/folds/ (from `digitd-train
evaluate`): each speaker by the model that never heard them. Without them the shipped model
stands in, and the report says that it has heard those speakers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from digitd.daemon.heap import keep_freed_memory
from digitd.train.data import Utterances
from digitd.train.synth import DIGIT_WORDS

from bench import cost, material, report, strings
from bench.recognizers import Digitd, Pocketsphinx
from bench.scoring import StreamScore, score_stream

REPO = Path(__file__).resolve().parent.parent


@dataclass
class BenchConfig:
    quick: bool = False
    rate: int = material.RATE  # the audio's rate: another rate is other audio
    per_digit: int | None = None  # FSDD takes per digit and speaker; None: all 50
    stream_digits: int = 40  # per stream; with 20, the DER at 20 dB swung 16-27% by seed
    stream_level_spread_db: float = 3.0  # each word at the SNR +- this, as loudness varies
    snrs: tuple[int, ...] = (30, 20, 10, 5)
    noises: tuple[str, ...] = ("white", "pink", "babble")
    non_digit_seconds: float = 300.0  # per kind: noise, tones, speech
    voices: int | None = None  # unseen TTS voices; None: all 64
    inference_runs: int = 2000
    daemon_seconds: float = 30.0
    string_snrs: tuple[int, ...] = (20, 10)
    strings_per_cell: int = 12  # digit strings per source, gap and SNR

    @classmethod
    def quick_mode(cls) -> BenchConfig:
        return cls(quick=True, per_digit=4, stream_digits=12, snrs=(20, 5),
                   noises=("pink", "babble"), non_digit_seconds=30.0, voices=6,
                   inference_runs=200, daemon_seconds=5.0, string_snrs=(20,),
                   strings_per_cell=4)


PEER = "pocketsphinx"


def isolated(fsdd: Utterances, models: dict[str, Path | None],
             peer: Pocketsphinx | None) -> dict:
    out: dict = {"digitd": {}, **({PEER: {}} if peer else {})}
    for speaker in material.SPEAKERS:
        waves, digits = material.of_speaker(fsdd, speaker)
        if not waves:
            continue
        ours = Digitd(models[speaker])
        for name, recognizer in (("digitd", ours), (PEER, peer)):
            if recognizer is None:
                continue
            predicted = [recognizer.isolated(w) for w in waves]
            out[name][speaker] = {"truth": digits,
                                  "predicted": [-1 if p is None else p for p in predicted]}
    return out


def voices_and_words(cfg: BenchConfig, cache: Path, peer: Pocketsphinx | None) -> dict:
    voices = material.unseen_voices(cfg.voices)
    digits = material.synthesized(voices, list(DIGIT_WORDS), cache)
    words = material.synthesized(voices, material.non_digit_words(), cache)
    ours = Digitd()
    out: dict = {"voices": len(voices), "digit_clips": len(digits), "word_clips": len(words)}
    for name, recognizer in (("digitd", ours), (PEER, peer)):
        if recognizer is None:
            continue
        said = [DIGIT_WORDS.index(t) for t, _ in digits]
        heard = [recognizer.isolated(w) for _, w in digits]
        taken = [recognizer.isolated(w) for _, w in words]
        out[name] = {
            "digit_accuracy": float(np.mean([s == h for s, h in zip(said, heard, strict=True)])),
            "digit_rejected": float(np.mean([h is None for h in heard])),
            "word_false_accept": float(np.mean([t is not None for t in taken])),
        }
    return out


def recorded_voices(cfg: BenchConfig, peer: Pocketsphinx | None) -> dict:
    """Recorded people outside FSDD: Allison Smith's digits and non-digit words, and
    KLettres' letters and syllables in 20 languages (material.klettres_clips)."""
    digits, words = material.allison()
    letters, unreadable = material.klettres_clips(
        languages=material.QUICK_LANGUAGES if cfg.quick else None)
    out: dict = {"allison_digits": len(digits), "allison_words": len(words),
                 "klettres_clips": {k: len(v) for k, v in letters.items()},
                 "klettres_unreadable": unreadable}
    for name, recognizer in (("digitd", Digitd()), (PEER, peer)):
        if recognizer is None:
            continue
        heard = [recognizer.isolated(w) for _, w in digits]
        taken = {k: float(np.mean([recognizer.isolated(w) is not None for w in v]))
                 for k, v in letters.items()}
        out[name] = {
            "allison_digits_right": sum(h == d for h, (d, _) in zip(heard, digits, strict=True)),
            "allison_words_taken": (float(np.mean([recognizer.isolated(w) is not None
                                                   for w in words])) if words else None),
            "klettres_taken": taken,
        }
    return out


def speaker_streams(cfg: BenchConfig, fsdd: Utterances, speaker: str, model: Path | None,
                    truth_dir: Path, babble_pool: list[np.ndarray], with_peer: bool = True
                    ) -> tuple[dict, dict, float]:
    """One held-out speaker's streams through both recognizers (or digitd alone): scores,
    CPU, audio seconds."""
    k = material.SPEAKERS.index(speaker)
    waves, digits = material.of_speaker(fsdd, speaker)
    recognizers = (Digitd(model), Pocketsphinx()) if with_peer else (Digitd(model),)
    scores: dict = {}
    cpu = {recognizer.name: 0.0 for recognizer in recognizers}
    audio_seconds = 0.0
    for kind in cfg.noises:
        for snr in cfg.snrs:
            stream = material.digit_stream(f"{speaker}-{kind}-{snr}dB", waves, digits,
                                           cfg.stream_digits, snr, kind, babble_pool,
                                           seed=1000 * k + snr,
                                           level_spread_db=cfg.stream_level_spread_db)
            stream.write_csv(truth_dir)
            audio_seconds += stream.samples.size / material.RATE
            for recognizer in recognizers:
                t0 = time.process_time()
                emitted = recognizer.stream(stream.samples)
                cpu[recognizer.name] += time.process_time() - t0
                scores[(recognizer.name, kind, snr)] = score_stream(stream.truth, emitted)
    return scores, cpu, audio_seconds


def streaming(cfg: BenchConfig, fsdd: Utterances, models: dict[str, Path | None],
              truth_dir: Path, cache: Path, with_peer: bool = True) -> dict:
    """Every held-out speaker's streams, two speakers at a time (one per core): pocketsphinx
    decodes long noisy utterances slowly. CPU time is measured inside each worker.

    Babble talkers are voices no fold trained on (FSDD's other speakers are each fold's
    training voices): the unseen voices' words and phrases, played backwards."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    speakers = [s for s in material.SPEAKERS if material.of_speaker(fsdd, s)[0]]
    names = ("digitd", PEER) if with_peer else ("digitd",)
    scores = {(name, kind, snr): StreamScore(latencies_ms=[])
              for name in names for kind in cfg.noises for snr in cfg.snrs}
    cpu = dict.fromkeys(names, 0.0)
    audio_seconds = 0.0
    with ProcessPoolExecutor(max_workers=2,
                             mp_context=multiprocessing.get_context("fork")) as pool:
        babble_pool = material.unseen_speech(cfg.voices, cache)
        jobs = [pool.submit(speaker_streams, cfg, fsdd, s, models[s], truth_dir, babble_pool,
                            with_peer) for s in speakers]
        for job in jobs:
            part, part_cpu, seconds = job.result()
            for key, score in part.items():
                scores[key].add(score)
            for name in cpu:
                cpu[name] += part_cpu[name]
            audio_seconds += seconds
    out: dict = {"audio_hours": audio_seconds / 3600,
                 "cpu_seconds_per_audio_hour": {n: c / (audio_seconds / 3600)
                                                for n, c in cpu.items()}}
    for name in names:
        out[name] = {}
        for snr in cfg.snrs:
            total = StreamScore(latencies_ms=[])
            for kind in cfg.noises:
                total.add(scores[(name, kind, snr)])
                out[name][f"{kind} {snr} dB"] = scores[(name, kind, snr)].summary()
            out[name][f"all {snr} dB"] = total.summary()
    return out


def false_accepts(cfg: BenchConfig, cache: Path, peer: Pocketsphinx | None) -> dict:
    speech = material.unseen_speech(cfg.voices, cache)
    recognizers = [Digitd(), peer] if peer else [Digitd()]
    return {"seconds_per_kind": cfg.non_digit_seconds,
            **digits_per_hour(recognizers, cfg.non_digit_seconds, speech)}


def digits_per_hour(recognizers, seconds: float, speech: list[np.ndarray]) -> dict:
    """{recognizer name: {kind: digits emitted per hour}} over `seconds` of each kind of
    audio that holds no digit (noise, tones, speech), the same audio for every recognizer."""
    out: dict = {}
    for i, kind in enumerate(("noise", "tones", "speech")):
        samples = material.non_digit_stream(kind, seconds, speech, seed=50 + i)
        for recognizer in recognizers:
            emitted = recognizer.stream(samples)
            out.setdefault(recognizer.name, {})[kind] = len(emitted) / (seconds / 3600)
    return out


def costs(cfg: BenchConfig, fsdd: Utterances, peer: Pocketsphinx | None, work: Path) -> dict:
    from digitd.daemon.features import log_mel, window_mel

    ours = Digitd()
    classifier = ours.classifier
    f = classifier.features
    waves = fsdd.waves[:: max(1, len(fsdd.waves) // 200)]
    mels = [window_mel(w, f, lead=classifier.lead) for w in waves]
    vectors = [classifier.vectors(m) for m in mels]
    grids = classifier.metadata.phases
    runs = cfg.inference_runs
    folder = classifier.model_path.parent
    stages = {stage: folder / name for stage, name in classifier.metadata.files.items()}
    out: dict = {
        "model_bytes": {f"digitd {stage} (int8)": path.stat().st_size
                        for stage, path in stages.items()},
        "per_utterance_ms": {
            "digitd whole utterance (features + both stages)": cost.time_per_call(
                ours.isolated, waves, runs),
            "digitd log-mel features of a window": cost.time_per_call(
                lambda w: log_mel(w, f), [np.zeros(f.window_samples)], runs),
            f"digitd embedding, all {grids} x {f.head_embeddings} of a window in one pass":
                cost.time_per_call(classifier.vectors, mels, runs),
            "digitd embedding, one vector": cost.time_per_call(
                classifier.embeddings, [m[: f.embedding_frames] for m in mels], runs),
            f"digitd head, on {grids} grid(s)": cost.time_per_call(classifier.head_probabilities,
                                                                  vectors, runs),
        },
    }
    if peer:
        out["per_utterance_ms"]["pocketsphinx decode"] = cost.time_per_call(
            peer.isolated, waves, max(50, runs // 10))
        import pocketsphinx

        ps_model = Path(pocketsphinx.get_model_path())
        out["model_bytes"]["pocketsphinx en-us"] = sum(
            p.stat().st_size for p in (ps_model / "en-us").rglob("*") if p.is_file())
    # the same harness for both: 16 kHz PCM on stdin, digits on stdout
    stream = material.digit_stream("footprint", *material.of_speaker(fsdd, "theo"),
                                   cfg.stream_digits, 20, "pink", fsdd.waves[:50], seed=7,
                                   level_spread_db=cfg.stream_level_spread_db)
    pcm = (np.clip(stream.samples, -1, 1) * 32767).astype("<i2").tobytes()
    seconds = stream.samples.size / material.RATE
    out["process"] = {}
    for name in ("digitd", PEER) if peer else ("digitd",):
        run = cost.subprocess_footprint([sys.executable, "-m", "bench.recognizers", name], pcm)
        out["process"][name] = {"ready_s": run["ready_s"], "peak_rss_mb": run["peak_rss_mb"],
                                "cpu_seconds_per_audio_hour": run["cpu_s"] / seconds * 3600,
                                "audio_seconds": seconds}
    out["quiet_room"] = cost.quiet_room()
    out["daemon"] = cost.daemon_on_pulse(cfg.daemon_seconds)
    words, digits = material.of_speaker(fsdd, "theo")
    pad = np.zeros(material.RATE // 4)
    clips = [np.concatenate([pad, w, pad]) for w in words[: cfg.stream_digits]]
    out["wyoming"] = cost.wyoming_server(clips, material.RATE)
    out["wyoming"]["right"] = float(np.mean([t == str(d) for t, d in zip(
        out["wyoming"].pop("transcripts"), digits, strict=False)]))
    return out


def previous_peer_results(path: Path, cfg: BenchConfig) -> dict:
    """The last run's results, to take pocketsphinx's figures from: only a run of the same
    configuration decoded the same audio."""
    if not path.is_file():
        raise ValueError(f"--reuse-peer: no earlier results in {path}; run without it once")
    previous = json.loads(path.read_text())
    now, old = json.loads(json.dumps(asdict(cfg))), previous.get("config") or {}
    strings_only = ("string_snrs", "strings_per_cell")  # only the strings section's audio
    if ({k: v for k, v in old.items() if k not in strings_only}
            != {k: v for k, v in now.items() if k not in strings_only}):
        raise ValueError(f"--reuse-peer: {path} was run with another configuration "
                         f"({previous.get('config')}); run without it")
    if any(old.get(k) != now[k] for k in strings_only):  # its strings are measured afresh
        previous.get("strings", {}).pop(PEER, None)
    return previous


def reuse_peer_results(results: dict, previous: dict) -> dict:
    """Put the previous run's pocketsphinx figures into a run that measured digitd alone."""
    for section in ("isolated", "unseen_voices", "streaming", "false_accepts"):
        results[section][PEER] = previous[section][PEER]
    strings_now, strings_before = results.get("strings", {}), previous.get("strings", {})
    if PEER not in strings_now and PEER in strings_before:
        strings_now[PEER] = strings_before[PEER]
        strings_now["cpu_share"][PEER] = strings_before["cpu_share"][PEER]
    results["streaming"]["cpu_seconds_per_audio_hour"][PEER] = (
        previous["streaming"]["cpu_seconds_per_audio_hour"][PEER])
    for table in ("model_bytes", "per_utterance_ms", "process"):
        for key, value in previous["cost"][table].items():
            if key.startswith(PEER):
                results["cost"][table][key] = value
    # the first run that measured them, however many reuses ago
    results["peer_measured_in_s"] = previous.get("peer_measured_in_s", previous["elapsed_s"])
    return results


def fold_models(reports: Path) -> tuple[dict[str, Path | None], bool]:
    """Each FSDD speaker -> the fold model that never heard them (reports/folds/, from
    `digitd-train evaluate`), or None for all when there are none."""
    models: dict[str, Path | None] = {}
    for path in sorted((reports / "folds").glob("fold-*/digitd.json")):
        for speaker in json.loads(path.read_text()).get("fold", {}).get("fsdd_held_out", []):
            models[speaker] = path
    if set(models) >= set(material.SPEAKERS):
        return models, True
    return dict.fromkeys(material.SPEAKERS), False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI-sized run, a few minutes")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "fsdd")
    parser.add_argument("--reports", type=Path, default=REPO / "reports")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "digitd" / "synth")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: reports/bench, or reports/bench-quick)")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="default: BENCHMARKS.md (full run) or <out>/BENCHMARKS.md (quick)")
    parser.add_argument("--reuse-peer", action="store_true",
                        help="measure digitd only; take pocketsphinx's figures from the last "
                             "results.json of the same configuration (the same audio)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the markdown and plots from the last results.json")
    return parser


def measure(cfg: BenchConfig, args: argparse.Namespace, out: Path, previous: dict | None
            ) -> dict:
    """Every section of the benchmark, in one run on the same audio."""
    started = time.monotonic()

    def step(name: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {name}", file=sys.stderr, flush=True)

    models, loso = fold_models(args.reports)
    step("loading FSDD" + ("" if loso else " (no fold models: the shipped model stands in)"))
    fsdd = material.load_fsdd(args.data, cfg.per_digit)
    peer = None if previous else Pocketsphinx()
    results: dict = {"config": asdict(cfg), "fold_models": loso}
    if (args.reports / "evaluation.json").is_file():
        results["evaluation"] = json.loads((args.reports / "evaluation.json").read_text())
    step("isolated digits, held-out speakers")
    results["isolated"] = isolated(fsdd, models, peer)
    step("voices training never used")
    results["unseen_voices"] = voices_and_words(cfg, args.cache, peer)
    step("recorded voices outside FSDD")
    results["recorded_voices"] = recorded_voices(cfg, peer or Pocketsphinx())
    step("streams with noise")
    results["streaming"] = streaming(cfg, fsdd, models, out / "streams", args.cache,
                                     with_peer=peer is not None)
    step("audio with no digit in it")
    results["false_accepts"] = false_accepts(cfg, args.cache, peer)
    step("digit strings")
    # a results file from before the strings section has no pocketsphinx strings to reuse
    string_peer = peer or (None if previous and PEER in previous.get("strings", {})
                           else Pocketsphinx())
    results["strings"] = strings.run(cfg.strings_per_cell, cfg.string_snrs, cfg.voices,
                                     args.cache, string_peer, cfg.stream_digits,
                                     cfg.non_digit_seconds)
    step("cost")
    results["cost"] = costs(cfg, fsdd, peer, out)
    results["elapsed_s"] = time.monotonic() - started
    if previous:
        reuse_peer_results(results, previous)
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # as `digitd` does: the in-process timings are the daemon's
    cfg = BenchConfig.quick_mode() if args.quick else BenchConfig()
    out = args.out or args.reports / ("bench-quick" if args.quick else "bench")
    out.mkdir(parents=True, exist_ok=True)
    markdown = args.markdown or (out / "BENCHMARKS.md" if args.quick else REPO / "BENCHMARKS.md")
    if args.report_only:
        report.write(json.loads((out / "results.json").read_text()), out, markdown)
        return 0
    previous = None
    if args.reuse_peer:
        try:
            previous = previous_peer_results(out / "results.json", cfg)
        except ValueError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
    results = measure(cfg, args, out, previous)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = report.write(results, out, markdown)
    print(text)
    print(f"bench: wrote {markdown} and {out}", file=sys.stderr)
    return 0
