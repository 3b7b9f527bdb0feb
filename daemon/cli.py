"""digitd: recognize spoken digits offline. Digits go to stdout, one per line; logs to stderr.

  digitd listen                      microphone -> digits, until stopped
  digitd listen --input - --rate R   raw s16le PCM on stdin (arecord ... | digitd listen --input -)
  digitd recognize FILE...           each file streamed through the same VAD pipeline
  digitd recognize --whole FILE...   each file is one utterance
  digitd devices                     list input devices
  digitd demo                        recognize the bundled sample (no microphone needed)
  digitd config --check | --example  validate the config file / print a commented example

Every option also has a key in the TOML config file (--config PATH, else
$XDG_CONFIG_HOME/digitd/config.toml, else /etc/digitd/config.toml); options override it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

# The daemon's matrices are tiny (a few hundred frames by 257 bins): OpenBLAS's worker threads
# would spin between them and cost more than twice the CPU of one thread. Before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .config import (  # noqa: E402
    DEMO,
    LISTEN,
    RECOGNIZE,
    ConfigError,
    Settings,
    add_options,
    example_config,
    resolve,
)
from .model import DigitClassifier, ModelError
from .mqtt import MqttError
from .sources import DeviceError

log = logging.getLogger("digitd")


class Shutdown(Exception):
    """SIGTERM or SIGINT: stop cleanly."""


def emit(line: str) -> None:
    """One result line on stdout, flushed at once so a pipe reader sees it now."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _on_signal(signum, frame) -> None:
    raise Shutdown(signal.Signals(signum).name)


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
                emit(json.dumps(event.row(file)))
            else:
                emit("-" if event.digit is None else str(event.digit))


Sink = Callable[[list, "str | None"], None]


def run_stream(source, recognizer, sinks: list[Sink], file: str | None = None,
               on_block: Callable[[Any], None] | None = None) -> None:
    for block in source:
        if block.gap:
            recognizer.reset()
        events = recognizer.feed(block.samples, block.arrival)
        for sink in sinks:
            sink(events, file)
        if on_block is not None:
            on_block(block)
    events = recognizer.finish()
    for sink in sinks:
        sink(events, file)


class ServiceState:
    """The systemd side of the audio loop: READY once audio flows, a watchdog ping from
    every turn of the loop, STATUS when the device or the digit count changes."""

    def __init__(self, notifier, source, printer: EventPrinter) -> None:
        self.notifier, self.source, self.printer = notifier, source, printer
        self._shown: tuple | None = None

    def status(self) -> str:
        if self.source.lost:
            return (f"input device lost ({self.source.description}), reopening; "
                    f"{self.printer.digits} digits so far")
        return f"listening on {self.source.description}; {self.printer.digits} digits so far"

    def __call__(self, block) -> None:
        if not self.notifier.ready_sent:
            if block.samples.size == 0:
                return
            self.notifier.ready(self.status())
            self._shown = (self.source.lost, self.printer.digits)
        self.notifier.heartbeat()
        state = (self.source.lost, self.printer.digits)
        if state != self._shown:
            self._shown = state
            self.notifier.status(self.status())


def open_publisher(settings: Settings):
    """The MQTT sink when mqtt.url is set, connected (or connecting), else None."""
    if not settings["mqtt.url"]:
        return None
    from .mqtt import MqttPublisher, MqttSettings

    publisher = MqttPublisher(MqttSettings.from_settings(settings))
    publisher.start()
    return publisher


def cmd_listen(args: argparse.Namespace, settings: Settings) -> int:
    from .notify import Notifier
    from .pipeline import StreamRecognizer
    from .sources import MicrophoneSource, RawPcmSource, input_devices, stdin_binary

    segmenter = settings.segmenter()
    if settings["audio.input"] != "-":
        # Scan the devices before the model loads: the plugins ALSA maps for the scan are
        # released after it, so they never add to the interpreter's memory at the peak.
        input_devices()
    classifier = load_classifier(settings)
    recognizer = StreamRecognizer(classifier, segmenter)
    printer = EventPrinter(settings["format"], settings["verbose"])
    rate = classifier.features.sample_rate
    if settings["audio.input"] == "-":
        source = RawPcmSource(stdin_binary(), settings["audio.rate"], rate,
                              settings["audio.channels"])
        log.info("reading s16le PCM from stdin at %d Hz, %d ch", settings["audio.rate"],
                 settings["audio.channels"])
    else:
        source = MicrophoneSource(rate, device=settings["audio.device"] or None,
                                  block_seconds=settings["audio.block_ms"] / 1000.0)
    publisher = open_publisher(settings)
    sinks: list[Sink] = [printer] + ([publisher] if publisher is not None else [])
    notifier = Notifier()
    try:  # a DeviceError here is the first open failing; later losses are reopened
        run_stream(source, recognizer, sinks, on_block=ServiceState(notifier, source, printer))
    except Shutdown as why:
        log.info("%s: stopping (%d digits recognized)", why, printer.digits)
    finally:
        notifier.stopping(f"stopping; {printer.digits} digits recognized")
        if hasattr(source, "stop"):
            source.stop()
        if publisher is not None:
            publisher.close()
        notifier.close()
    return 0


def load_classifier(settings: Settings) -> DigitClassifier:
    """The model, with the rejection limits the settings give in place of its own."""
    classifier = DigitClassifier(Path(settings["model"]) if settings["model"] else None)
    if overrides := settings.rejection():
        classifier.rejection = replace(classifier.rejection, **overrides)
        log.info("rejection: %s (the model's: %s)", classifier.rejection.describe(),
                 classifier.metadata.rejection.describe())
    return classifier


def recognize_whole(files: list[str], classifier: DigitClassifier, settings: Settings) -> int:
    from .recognize import recognize_files

    failed = 0
    publisher = open_publisher(settings)
    try:
        for result in recognize_files(files, classifier):
            if result.error is not None:
                failed += 1
                print(f"digitd: {result.error}", file=sys.stderr)
            if settings["format"] == "jsonl":
                emit(json.dumps(result.to_json()))
            elif result.prediction is not None:
                digit = result.prediction.digit
                emit("-" if digit is None else str(digit))
            if publisher is not None and result.prediction is not None and (
                    result.prediction.digit is not None):
                from .pipeline import wall_time

                publisher.publish({**result.to_json(), "time": wall_time(),
                                   "event_type": str(result.prediction.digit)})
    finally:
        if publisher is not None and publisher.close():
            failed += 1  # digits printed but not delivered: a script should know
    return 1 if failed else 0


def cmd_recognize(args: argparse.Namespace, settings: Settings) -> int:
    classifier = load_classifier(settings)
    failed = 0
    if args.whole:
        return recognize_whole(args.files, classifier, settings)

    from .audio import AudioError
    from .pipeline import StreamRecognizer
    from .sources import FileSource

    segmenter = settings.segmenter()
    printer = EventPrinter(settings["format"], settings["verbose"])
    publisher = open_publisher(settings)
    sinks: list[Sink] = [printer] + ([publisher] if publisher is not None else [])
    try:
        for path in args.files:
            try:
                source = FileSource(path, classifier.features.sample_rate)
            except AudioError as exc:
                failed += 1
                print(f"digitd: {exc}", file=sys.stderr)
                if settings["format"] == "jsonl":
                    emit(json.dumps({"file": path, "digit": None, "error": str(exc)}))
                continue
            run_stream(source, StreamRecognizer(classifier, segmenter), sinks, file=path)
    finally:
        if publisher is not None and publisher.close():
            failed += 1  # digits printed but not delivered: a script should know
    return 1 if failed else 0


def cmd_devices(args: argparse.Namespace) -> int:
    from .sources import input_devices

    devices = input_devices()
    if args.list_format == "jsonl":
        for d in devices:
            emit(json.dumps(d))
    elif not devices:
        print("digitd: no input devices found", file=sys.stderr)
    else:
        emit(f"{'index':>5}  {'rate':>6}  {'ch':>2}  name")
        for d in devices:
            emit(f"{d['index']:>5}  {d['default_rate']:>6}  {d['channels']:>2}  {d['name']}")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Recognize the bundled sample recording: the product working without a microphone."""
    from importlib import resources

    sample = resources.files("digitd.daemon").joinpath("samples/four-two-seven.wav")
    print(f"digitd: recognizing the bundled sample {sample} (someone saying 4, 2, 7)",
          file=sys.stderr)
    args.files, args.whole = [str(sample)], False
    return cmd_recognize(args, settings)


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    if args.example:
        sys.stdout.write(example_config())
        return 0
    sys.stdout.write(settings.to_toml())
    print(f"digitd: settings OK ({settings.file or 'no config file, defaults'})", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digitd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("listen", help="recognize digits from a microphone or stdin")
    add_options(p, LISTEN)
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser("recognize", help="recognize digits in audio files")
    p.add_argument("files", nargs="+", metavar="FILE", help="WAV/FLAC/OGG, any rate or channels")
    p.add_argument("--whole", action="store_true",
                   help="each file is one utterance: trim silence, classify once "
                        "(text: the digit or '-'; jsonl: one object per file)")
    add_options(p, RECOGNIZE)
    p.set_defaults(func=cmd_recognize)

    p = sub.add_parser("demo", help="recognize the bundled sample recording (no microphone)")
    add_options(p, DEMO)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("devices", help="list audio input devices")
    p.add_argument("--format", dest="list_format", choices=("text", "jsonl"), default="text")
    p.set_defaults(func=cmd_devices, settings_free=True)

    p = sub.add_parser("config", help="check the config file, or print an example")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--check", action="store_true",
                      help="validate the config file and options; print the effective settings")
    what.add_argument("--example", action="store_true",
                      help="print a commented example config file")
    add_options(p, LISTEN)
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = None
    if not getattr(args, "settings_free", False) and not getattr(args, "example", False):
        try:
            settings = resolve(args)
        except ConfigError as exc:
            print(f"digitd: {exc}", file=sys.stderr)
            return 2
    logging.basicConfig(level=settings["log_level"] if settings else "INFO",
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        if settings is None:
            return args.func(args) if args.func is cmd_devices else args.func(args, None)
        return args.func(args, settings)
    except (ConfigError, DeviceError, ModelError, MqttError) as exc:
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
