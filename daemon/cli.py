"""digitd: recognize spoken digits offline. Digits go to stdout, one per line; logs to stderr.

  digitd listen                      microphone -> digits, until stopped
  digitd listen --input - --rate R   raw s16le PCM on stdin (arecord ... | digitd listen --input -)
  digitd recognize FILE...           each file streamed through the same VAD pipeline
  digitd recognize --whole FILE...   each file is one utterance
  digitd devices                     list input devices
  digitd demo                        recognize the bundled sample (no microphone needed)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
from collections.abc import Iterable
from pathlib import Path

from .model import DigitClassifier, ModelError
from .segmenter import SegmenterSettings

log = logging.getLogger("digitd")


class Shutdown(Exception):
    """SIGTERM or SIGINT: stop cleanly."""


class SettingsError(Exception):
    """A command-line setting out of range."""


def emit(line: str) -> None:
    """One result line on stdout, flushed at once so a pipe reader sees it now."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _on_signal(signum, frame) -> None:
    raise Shutdown(signal.Signals(signum).name)


def segmenter_settings(args: argparse.Namespace) -> SegmenterSettings:
    settings = SegmenterSettings(
        aggressiveness=args.vad_aggressiveness, frame_ms=args.frame_ms,
        trigger_ms=args.trigger_ms, trigger_ratio=args.trigger_ratio,
        preroll_ms=args.preroll_ms,
        hangover_ms=args.hangover_ms, release_ratio=args.release_ratio,
        min_speech_ms=args.min_speech_ms, max_segment_ms=args.max_segment_ms,
    )
    try:
        settings.validate()
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    return settings


class EventPrinter:
    """Events -> stdout lines in the chosen format."""

    def __init__(self, fmt: str, verbose: bool) -> None:
        self.fmt, self.verbose = fmt, verbose
        self.digits = 0

    def __call__(self, events: Iterable, file: str | None = None) -> None:
        for event in events:
            if event.digit is None and not self.verbose:
                continue
            if event.digit is not None:
                self.digits += 1
            if self.fmt == "jsonl":
                row = event.to_json()
                row["time"] = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
                if file is not None:
                    row = {"file": file, **row}
                emit(json.dumps(row))
            else:
                emit("-" if event.digit is None else str(event.digit))


def run_stream(source, recognizer, printer: EventPrinter, file: str | None = None) -> None:
    for block in source:
        if block.gap:
            recognizer.reset()
        printer(recognizer.feed(block.samples, block.arrival), file)
    printer(recognizer.finish(), file)


def cmd_listen(args: argparse.Namespace) -> int:
    from .pipeline import StreamRecognizer
    from .sources import DeviceError, MicrophoneSource, RawPcmSource, stdin_binary

    settings = segmenter_settings(args)
    if args.rate <= 0 or args.channels <= 0:
        raise SettingsError("--rate and --channels must be positive")
    if not 5 <= args.block_ms <= 200:
        raise SettingsError("--block-ms must be within 5-200")
    classifier = DigitClassifier(args.model)
    recognizer = StreamRecognizer(classifier, settings)
    printer = EventPrinter(args.format, args.verbose)
    rate = classifier.features.sample_rate
    if args.input == "-":
        source = RawPcmSource(stdin_binary(), args.rate, rate, args.channels)
        log.info("reading s16le PCM from stdin at %d Hz, %d ch", args.rate, args.channels)
    else:
        try:
            source = MicrophoneSource(rate, device=args.device,
                                      block_seconds=args.block_ms / 1000.0)
        except DeviceError as exc:
            print(f"digitd: {exc}", file=sys.stderr)
            return 2
    try:
        run_stream(source, recognizer, printer)
    except Shutdown as why:
        log.info("%s: stopping (%d digits recognized)", why, printer.digits)
    except DeviceError as exc:  # the first open failed; later losses are reopened
        print(f"digitd: {exc}", file=sys.stderr)
        return 2
    finally:
        if hasattr(source, "stop"):
            source.stop()
    return 0


def cmd_recognize(args: argparse.Namespace) -> int:
    classifier = DigitClassifier(args.model)
    failed = 0
    if args.whole:
        from .recognize import recognize_files

        for result in recognize_files(args.files, classifier):
            if result.error is not None:
                failed += 1
                print(f"digitd: {result.error}", file=sys.stderr)
            if args.format == "jsonl":
                emit(json.dumps(result.to_json()))
            elif result.prediction is not None:
                digit = result.prediction.digit
                emit("-" if digit is None else str(digit))
        return 1 if failed else 0

    from .audio import AudioError
    from .pipeline import StreamRecognizer
    from .sources import FileSource

    settings = segmenter_settings(args)
    printer = EventPrinter(args.format, args.verbose)
    for path in args.files:
        try:
            source = FileSource(path, classifier.features.sample_rate)
        except AudioError as exc:
            failed += 1
            print(f"digitd: {exc}", file=sys.stderr)
            if args.format == "jsonl":
                emit(json.dumps({"file": path, "digit": None, "error": str(exc)}))
            continue
        run_stream(source, StreamRecognizer(classifier, settings), printer, file=path)
    return 1 if failed else 0


def cmd_devices(args: argparse.Namespace) -> int:
    from .sources import DeviceError, input_devices

    try:
        devices = input_devices()
    except DeviceError as exc:
        print(f"digitd: {exc}", file=sys.stderr)
        return 2
    if args.format == "jsonl":
        for d in devices:
            emit(json.dumps(d))
    elif not devices:
        print("digitd: no input devices found", file=sys.stderr)
    else:
        emit(f"{'index':>5}  {'rate':>6}  {'ch':>2}  name")
        for d in devices:
            emit(f"{d['index']:>5}  {d['default_rate']:>6}  {d['channels']:>2}  {d['name']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Recognize the bundled sample recording: the product working without a microphone."""
    from importlib import resources

    sample = resources.files("digitd.daemon").joinpath("samples/four-two-seven.wav")
    print(f"digitd: recognizing the bundled sample {sample} (someone saying 4, 2, 7)",
          file=sys.stderr)
    args.files, args.whole, args.verbose = [str(sample)], False, False
    return cmd_recognize(args)


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None,
                   help="a .tflite model with its .json metadata beside it (default: shipped)")


def _segmenter_args(p: argparse.ArgumentParser) -> None:
    d = SegmenterSettings()
    g = p.add_argument_group("segmentation (webrtcvad)")
    g.add_argument("--vad-aggressiveness", type=int, default=d.aggressiveness, choices=range(4))
    g.add_argument("--frame-ms", type=int, default=d.frame_ms, choices=(10, 20, 30))
    g.add_argument("--trigger-ms", type=int, default=d.trigger_ms,
                   help="ring of recent frames that decides speech started")
    g.add_argument("--trigger-ratio", type=float, default=d.trigger_ratio)
    g.add_argument("--preroll-ms", type=int, default=d.preroll_ms,
                   help="audio kept from before speech was detected")
    g.add_argument("--hangover-ms", type=int, default=d.hangover_ms,
                   help="trailing silence that ends a segment")
    g.add_argument("--release-ratio", type=float, default=d.release_ratio)
    g.add_argument("--min-speech-ms", type=int, default=d.min_speech_ms,
                   help="segments with less voiced audio are dropped (clicks, breaths)")
    g.add_argument("--max-segment-ms", type=int, default=d.max_segment_ms,
                   help="longer speech is rejected as not a digit")


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "jsonl"), default="text")
    p.add_argument("--verbose", action="store_true",
                   help="also print rejected segments (digit null, or '-' in text)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digitd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("listen", help="recognize digits from a microphone or stdin")
    p.add_argument("--device", default=None, help="input device index or name substring")
    p.add_argument("--block-ms", type=int, default=20,
                   help="microphone block size: 40 roughly halves the CPU used while "
                        "listening (1.6%% vs 2.7%% of a core here) and adds ~10 ms latency")
    p.add_argument("--input", default=None, choices=("-",),
                   help="'-': read raw s16le PCM from stdin instead of a microphone")
    p.add_argument("--rate", type=int, default=16000, help="stdin PCM sample rate")
    p.add_argument("--channels", type=int, default=1, help="stdin PCM channels")
    _model_arg(p)
    _output_args(p)
    _segmenter_args(p)
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser("recognize", help="recognize digits in audio files")
    p.add_argument("files", nargs="+", metavar="FILE", help="WAV/FLAC/OGG, any rate or channels")
    p.add_argument("--whole", action="store_true",
                   help="each file is one utterance: trim silence, classify once "
                        "(text: the digit or '-'; jsonl: one object per file)")
    _model_arg(p)
    _output_args(p)
    _segmenter_args(p)
    p.set_defaults(func=cmd_recognize)

    p = sub.add_parser("demo", help="recognize the bundled sample recording (no microphone)")
    p.add_argument("--format", choices=("text", "jsonl"), default="text")
    _model_arg(p)
    _segmenter_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("devices", help="list audio input devices")
    p.add_argument("--format", choices=("text", "jsonl"), default="text")
    p.set_defaults(func=cmd_devices)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        return args.func(args)
    except (SettingsError, ModelError) as exc:
        print(f"digitd: {exc}", file=sys.stderr)
        return 2
    except Shutdown:
        return 0
    except BrokenPipeError:
        # The reader went away (digitd listen | head -3): end quietly with status 0, and
        # keep Python from failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
