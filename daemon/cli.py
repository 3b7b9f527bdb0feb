"""digitd: recognize spoken digits offline. Digits go to stdout, one per line; logs to stderr.

  digitd listen                      microphone -> digits, until stopped
  digitd listen --input - --rate R   raw s16le PCM on stdin (arecord ... | digitd listen --input -)
  digitd recognize FILE...           each file streamed through the same VAD pipeline
  digitd recognize --whole FILE...   each file is one utterance
  digitd wyoming                     a Wyoming speech-to-text server for Home Assistant
  digitd devices                     list input devices
  digitd level                       the input level, to set up a microphone
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
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

# The daemon's matrices are tiny (a few hundred frames by 257 bins): OpenBLAS's worker threads
# would spin between them and cost more than twice the CPU of one thread. Before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from digitd import __version__  # noqa: E402

from .config import (  # noqa: E402
    DEMO,
    LEVEL,
    LISTEN,
    RECOGNIZE,
    WYOMING,
    ConfigError,
    Settings,
    add_options,
    example_config,
    resolve,
)
from .heap import keep_freed_memory  # noqa: E402
from .model import DigitClassifier, ModelError  # noqa: E402
from .mqtt import MqttError  # noqa: E402
from .quiet import filter_c_stderr  # noqa: E402
from .sinks import Fanout, OutputError, ReaderGone, StdoutSink, emit  # noqa: E402
from .sources import DeviceError  # noqa: E402
from .stream import Shutdown, StreamLoop, stop_on_signals  # noqa: E402

log = logging.getLogger("digitd")

EXIT_OUTPUT = 3  # every output failed: distinct from 1 (a file failed) and 2 (bad setup)


def open_outputs(settings: Settings, every_result: bool = False
                 ) -> tuple[StdoutSink, Any, Fanout]:
    """stdout, the MQTT publisher when mqtt.url is set (connected or connecting), and the
    fan-out over both. `every_result`: stdout gets rejections too (one line per file)."""
    printer = StdoutSink(settings["format"], settings["verbose"] or every_result)
    mqtt = bool(settings["mqtt.url"])
    to_stdout = settings["stdout"] == "on" or (settings["stdout"] == "unless-mqtt" and not mqtt)
    if not to_stdout and not mqtt:
        raise ConfigError("stdout = \"off\" and no mqtt.url: the digits would go nowhere")
    publisher = None
    if mqtt:
        from .mqtt import MqttPublisher, MqttSettings

        publisher = MqttPublisher(MqttSettings.from_settings(settings))
        publisher.start()
    if not to_stdout:
        log.info("digits go to MQTT only, not stdout (stdout = %s)", settings["stdout"])
    sinks = [printer] * to_stdout + [publisher] * (publisher is not None)
    return printer, publisher, Fanout(sinks)


def number_gap(settings: Settings) -> float | None:
    """--numbers: the pause, in seconds, that ends a number; None: one digit per line."""
    return settings["number_gap_ms"] / 1000 if settings["numbers"] else None


def close_publisher(publisher: Any) -> int:
    """Flush and close MQTT; 1 when digits were not delivered (a script should know)."""
    return 1 if publisher is not None and publisher.close() else 0


def open_source(settings: Settings, rate: int) -> Any:
    from .sources import MicrophoneSource, RawPcmSource, stdin_binary

    if settings["audio.input"] == "-":
        log.info("reading s16le PCM from stdin at %d Hz, %d ch", settings["audio.rate"],
                 settings["audio.channels"])
        return RawPcmSource(stdin_binary(), settings["audio.rate"], rate,
                            settings["audio.channels"])
    return MicrophoneSource(rate, device=settings["audio.device"] or None,
                            block_seconds=settings["audio.block_ms"] / 1000.0)


def cmd_listen(args: argparse.Namespace, settings: Settings) -> int:
    from .level import SilenceWatch
    from .notify import Notifier, ServiceState
    from .pipeline import StreamRecognizer
    from .sources import input_devices

    if settings["audio.input"] != "-":
        # Scan the devices before the model loads: the plugins ALSA maps for the scan are
        # released after it, so they never add to the interpreter's memory at the peak.
        input_devices()
    classifier = load_classifier(settings)
    recognizer = StreamRecognizer(classifier, settings.segmenter())
    source = open_source(settings, classifier.features.sample_rate)
    _, publisher, output = open_outputs(settings)
    loop = StreamLoop(output, settings["count"] or None, number_gap(settings))
    notifier = Notifier()
    try:  # a DeviceError here is the first open failing; later losses are reopened
        watch = SilenceWatch(classifier.features.sample_rate)
        loop.run(source, recognizer, on_block=ServiceState(notifier, source, loop, watch))
    except Shutdown as why:
        log.info("%s: stopping (%d digits recognized)", why, loop.digits)
    finally:
        notifier.stopping(f"stopping; {loop.digits} digits recognized")
        if hasattr(source, "stop"):
            source.stop()
        close_publisher(publisher)  # undelivered digits are logged; a stop is no failure
        notifier.close()
    return 0


def load_classifier(settings: Settings) -> DigitClassifier:
    """The model, with the rejection limits the settings give in place of its own."""
    classifier = DigitClassifier(Path(settings["model"]) if settings["model"] else None)
    if overrides := settings.rejection():
        classifier.rejection = replace(classifier.rejection, **overrides)
        log.info("rejection: %s (the model's: %s)", classifier.rejection.describe(),
                 classifier.metadata.rejection.describe())
        rule = classifier.rejection
        if rule.max_unknown <= 0 or rule.min_confidence >= 1:
            log.warning("rejection.%s = %g rejects every digit: nothing will be recognized",
                        "max_unknown" if rule.max_unknown <= 0 else "min_confidence",
                        rule.max_unknown if rule.max_unknown <= 0 else rule.min_confidence)
    return classifier


def recognize_whole_files(files: list[str], classifier: DigitClassifier,
                          settings: Settings) -> int:
    """One line per file in every format (text: the digit, '-' or '?'); digits to MQTT."""
    from .recognize import recognize_files

    _, publisher, output = open_outputs(settings, every_result=True)
    failed = 0
    try:
        for result in recognize_files(files, classifier):
            if result.error is not None:
                failed += 1
                print(f"digitd: {result.error}", file=sys.stderr)
            output([result])
    finally:
        failed += close_publisher(publisher)
    return 1 if failed else 0


def cmd_recognize(args: argparse.Namespace, settings: Settings) -> int:
    from .audio import AudioError
    from .pipeline import StreamRecognizer
    from .sources import FileSource

    classifier = load_classifier(settings)
    if args.whole:
        return recognize_whole_files(args.files, classifier, settings)
    segmenter = settings.segmenter()
    printer, publisher, output = open_outputs(settings)
    loop = StreamLoop(output, number_gap=number_gap(settings))
    failed = 0
    try:
        for path in args.files:
            try:
                loop.run(FileSource(path, classifier.features.sample_rate),
                         StreamRecognizer(classifier, segmenter), file=path)
            except AudioError as exc:  # digits before a damaged part are already out
                failed += 1
                print(f"digitd: {exc}", file=sys.stderr)
                if settings["format"] == "jsonl":
                    printer.line(json.dumps({"file": path, "digit": None, "error": str(exc)}))
    finally:
        failed += close_publisher(publisher)
    return 1 if failed else 0


def cmd_wyoming(args: argparse.Namespace, settings: Settings) -> int:
    """A Wyoming speech-to-text server until stopped: Home Assistant's voice pipeline."""
    import asyncio

    try:
        import wyoming  # noqa: F401
    except ImportError as exc:
        raise ConfigError("the Wyoming server needs the wyoming package: "
                          "pip install 'digitd[wyoming]'") from exc
    from .notify import Notifier
    from .wyoming_server import WyomingServer

    server = WyomingServer(load_classifier(settings), settings.segmenter())
    notifier, uri = Notifier(), settings["wyoming.uri"]

    async def serve() -> None:
        if settings["wyoming.zeroconf"]:
            await announce(uri)
        pinger = asyncio.create_task(keep_alive(notifier))
        try:
            await server.serve(uri, ready=notifier.ready)
        finally:
            pinger.cancel()

    try:
        asyncio.run(serve())  # until SIGTERM or SIGINT, which the server's loop handles
    except OSError as exc:
        raise ConfigError(f"cannot listen on {uri}: {exc.strerror or exc}") from exc
    finally:
        notifier.stopping()
        notifier.close()
    return 0


async def keep_alive(notifier: Any) -> None:
    """The watchdog's ping while the server's loop turns."""
    import asyncio

    while True:
        notifier.heartbeat()
        await asyncio.sleep(1.0)


async def announce(uri: str) -> None:
    """Zeroconf (mDNS) _wyoming._tcp, as the other Wyoming servers do."""
    from urllib.parse import urlsplit

    try:
        from wyoming.zeroconf import HomeAssistantZeroconf
    except ImportError as exc:
        raise ConfigError("wyoming.zeroconf needs the zeroconf package: "
                          "pip install 'digitd[wyoming]'") from exc
    port = urlsplit(uri).port
    if port is None:
        raise ConfigError("wyoming.zeroconf announces a tcp:// server, not a unix socket")
    await HomeAssistantZeroconf(port=port).register_server()
    log.info("announced over mDNS as _wyoming._tcp on port %d", port)


def cmd_level(args: argparse.Namespace, settings: Settings) -> int:
    """The input level, four lines a second, to set up a microphone."""
    from .level import meter_lines

    rate = 16000
    source = open_source(settings, rate)
    print("digitd: input level (speech a step from the microphone: about -35 to -15 dBFS; "
          "Ctrl-C stops)", file=sys.stderr)
    try:
        for n, line in enumerate(meter_lines(source, rate), start=1):
            emit(line)
            if args.seconds and n >= args.seconds * 4:
                break
    finally:
        if hasattr(source, "stop"):
            source.stop()
    return 0


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
    parser.add_argument("--version", action="version", version=f"digitd {__version__}")
    sub = parser.add_subparsers(dest="command")

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

    p = sub.add_parser("wyoming", help="serve Home Assistant's voice pipeline (Wyoming "
                                       "speech-to-text)")
    add_options(p, WYOMING)
    p.set_defaults(func=cmd_wyoming)

    p = sub.add_parser("level", help="show the input level, to set up a microphone")
    p.add_argument("--seconds", type=float, default=0,
                   help="stop after this long (default: until Ctrl-C)")
    add_options(p, LEVEL)
    p.set_defaults(func=cmd_level)

    p = sub.add_parser("devices", help="list audio input devices")
    p.add_argument("--format", dest="list_format", choices=("text", "jsonl"), default="text")
    p.set_defaults(func=cmd_devices, settings_free=True)

    p = sub.add_parser("config", help="check the config file, or print an example")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--check", action="store_true",
                      help="validate the config file and options; print the effective settings")
    what.add_argument("--example", action="store_true",
                      help="print a commented example config file")
    add_options(p, "config")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    settings = None
    if not getattr(args, "settings_free", False) and not getattr(args, "example", False):
        try:
            settings = resolve(args)
        except ConfigError as exc:
            print(f"digitd: {exc}", file=sys.stderr)
            return 2
    filter_c_stderr()
    logging.basicConfig(level=settings["log_level"] if settings else "INFO",
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    keep_freed_memory()  # after logging: its debug line, where mallopt refuses, must show
    stop_on_signals()
    try:
        if settings is None:
            return args.func(args) if args.func is cmd_devices else args.func(args, None)
        return args.func(args, settings)
    except (ConfigError, DeviceError, ModelError, MqttError) as exc:
        print(f"digitd: {exc}", file=sys.stderr)
        return 2
    except OutputError as exc:
        print(f"digitd: {exc}; stopping", file=sys.stderr)
        return EXIT_OUTPUT
    except (Shutdown, ReaderGone):  # a signal, or the reader went away (listen | head -3)
        return 0
    except BrokenPipeError:  # stdout outside the sinks (devices, config): the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
