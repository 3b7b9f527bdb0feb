"""Settings: one table of options, read from a TOML file and overridden by the command line.

Every command-line option has a config key (`vad.aggressiveness` is `--vad-aggressiveness`
and `aggressiveness` in the `[vad]` table). The file is `--config PATH`, else
`$XDG_CONFIG_HOME/digitd/config.toml` (`~/.config/...`), else `/etc/digitd/config.toml`.
Precedence: built-in default < file < command line. A bad file (unknown key, wrong type,
value out of range, broken TOML) stops the program at start with the file, key and reason.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .segmenter import SegmenterSettings

LISTEN, RECOGNIZE, DEMO, WYOMING, LEVEL = "listen", "recognize", "demo", "wyoming", "level"
SOURCES = (LISTEN, LEVEL)  # the commands that open a microphone or stdin
STREAMING = (LISTEN, RECOGNIZE, DEMO)  # the commands with outputs of their own
RECOGNIZING = (*STREAMING, WYOMING)  # every command that runs the model
SYSTEM_CONFIG = Path("/etc/digitd/config.toml")


class ConfigError(Exception):
    """A setting that cannot be used: names the file (or flag), the key and the reason."""


def check_mqtt_url(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        return "must start with mqtt:// or mqtts://"
    try:
        parts.port  # noqa: B018 - raises on a non-numeric or out-of-range port
    except ValueError as exc:
        return f"bad port ({exc})"
    if not parts.hostname:
        return "has no host"
    return None


def check_server_uri(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme == "unix":
        return None if parts.path else "has no socket path"
    if parts.scheme != "tcp":
        return "must be tcp://HOST:PORT or unix:///PATH"
    try:
        port = parts.port
    except ValueError as exc:
        return f"bad port ({exc})"
    return None if parts.hostname and port else "needs a host and a port"


def check_device_id(value: str) -> str | None:
    if not value or any(c in value for c in "/+#") or value != value.strip():
        return "must be non-empty, without '/', '+', '#' or surrounding spaces"
    return None


@dataclass(frozen=True)
class Option:
    key: str  # "vad.aggressiveness": TOML table and key
    flag: str  # "--vad-aggressiveness"
    kind: type  # int, float, str or bool
    default: Any
    help: str
    commands: tuple[str, ...] = STREAMING  # subcommands that take it on the command line
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    check: Callable[[Any], str | None] | None = None  # a reason when the value is bad
    example: Any = None  # shown in the example file when the default is None
    secret: bool = False  # may hold a password: shown redacted, never whole

    def shown(self, value: Any) -> str:
        """The value as messages and `config --check` may print it."""
        from .mqtt import redact

        return json.dumps(redact(value) if self.secret and isinstance(value, str) else value)

    @property
    def dest(self) -> str:
        return self.key

    def describe_type(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(json.dumps(c) for c in self.choices)
        name = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        text = name[self.kind]
        if self.low is not None and self.high is not None:
            text += f" in {self.low:g}..{self.high:g}"
        elif self.low is not None:
            text += f" >= {self.low:g}"
        return text

    def convert(self, value: Any) -> Any:
        """The value as this option's type, or ValueError with the reason."""
        if self.key == "audio.device" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # an index written as a TOML integer
        ok = (isinstance(value, self.kind) and not (self.kind is int and isinstance(value, bool)))
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok or (self.kind is float and not math.isfinite(value)):
            raise ValueError(f"expected {self.describe_type()}, got {self.shown(value)}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"expected {self.describe_type()}, got {self.shown(value)}")
        if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high):
            raise ValueError(f"expected {self.describe_type()}, got {value}")
        if self.check is not None and (reason := self.check(value)) is not None:
            raise ValueError(f"{self.shown(value)} {reason}")
        return value


_SEG = SegmenterSettings()
OPTIONS: tuple[Option, ...] = (
    Option("model", "--model", str, "",
           "a model's metadata JSON, its two .tflite stages beside it (empty: the shipped "
           "model)", example="/opt/digitd/models/digitd.json", commands=RECOGNIZING),
    Option("format", "--format", str, "text", "output on stdout: one digit per line, or JSON "
           "lines", choices=("text", "jsonl")),
    Option("stdout", "--stdout", str, "on", "digits on stdout: 'unless-mqtt' keeps them out "
           "of the journal when MQTT delivers them (a door lock's codes are secrets); 'off' "
           "needs MQTT", choices=("on", "unless-mqtt", "off")),
    Option("count", "--count", int, 0, "stop after this many digits (numbers, with --numbers), "
           "so a script can read a PIN: pin=$(digitd listen --count 4) (0: run until stopped)",
           commands=(LISTEN,), low=0, high=1_000_000),
    Option("numbers", "--numbers", bool, False, "digits said together are one line, 427, once "
           "the speaker pauses; a word that is not a digit inside rejects the whole number"),
    Option("number_gap_ms", "--number-gap-ms", int, 1000, "the pause that ends a number: "
           "shorter keeps numbers apart sooner, longer lets people think between digits",
           low=100, high=10000),
    Option("verbose", "--verbose", bool, False,
           "also print rejected segments (digit null, or '-' in text)"),
    Option("log_level", "--log-level", str, "INFO", "what goes to stderr (journald)",
           commands=(*RECOGNIZING, LEVEL, "devices"),
           choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    # rejection: the model's calibrated limits unless set
    Option("rejection.max_unknown", "--max-unknown", float, None,
           "reject a segment when the model's 'not a digit' probability reaches this: lower "
           "means fewer digits nobody said and more missed ones (unset: the model's "
           "calibrated value)", low=0.0, high=1.0, example=0.05, commands=RECOGNIZING),
    Option("rejection.min_confidence", "--min-confidence", float, None,
           "reject a digit whose probability is below this: higher means fewer wrong digits "
           "and more missed ones (unset: the model's calibrated value)", low=0.0, high=1.0,
           example=0.5, commands=RECOGNIZING),
    # audio source: listen only
    Option("audio.device", "--device", str, "", "input device index or name substring "
           "(empty: the system default)", commands=SOURCES, example="USB"),
    Option("audio.block_ms", "--block-ms", int, 40, "microphone block size in ms: 20 costs "
           "about twice the CPU while listening for ~10 ms less latency", commands=SOURCES,
           low=5, high=200),
    Option("audio.input", "--input", str, "", "'-': read raw s16le PCM from stdin instead of a "
           "microphone", commands=SOURCES, choices=("", "-")),
    Option("audio.rate", "--rate", int, 16000, "sample rate of stdin PCM", commands=SOURCES,
           low=4000, high=384000),
    Option("audio.channels", "--channels", int, 1, "channels of stdin PCM", commands=SOURCES,
           low=1, high=32),
    # segmentation
    Option("vad.aggressiveness", "--vad-aggressiveness", int, _SEG.aggressiveness,
           "webrtcvad mode: 0 lenient .. 3 strict (misses quiet voices)", choices=(0, 1, 2, 3)),
    Option("vad.frame_ms", "--frame-ms", int, _SEG.frame_ms, "VAD frame length",
           choices=(10, 20, 30)),
    Option("vad.trigger_ms", "--trigger-ms", int, _SEG.trigger_ms,
           "ring of recent frames that decides speech started", low=10, high=2000),
    Option("vad.trigger_ratio", "--trigger-ratio", float, _SEG.trigger_ratio,
           "share of voiced frames in the ring that starts a segment", low=0.01, high=1.0),
    Option("vad.preroll_ms", "--preroll-ms", int, _SEG.preroll_ms,
           "audio kept from before speech was detected", low=10, high=2000),
    Option("vad.hangover_ms", "--hangover-ms", int, _SEG.hangover_ms,
           "trailing silence that ends a segment", low=10, high=2000),
    Option("vad.release_ratio", "--release-ratio", float, _SEG.release_ratio,
           "share of unvoiced frames in the hangover that ends a segment", low=0.01, high=1.0),
    Option("vad.min_speech_ms", "--min-speech-ms", int, _SEG.min_speech_ms,
           "segments with less voiced audio are dropped (clicks, breaths)", low=10, high=5000),
    Option("vad.max_segment_ms", "--max-segment-ms", int, _SEG.max_segment_ms,
           "longer speech is rejected (an 8-digit string said fluently takes ~4 s)",
           low=100, high=60000),
    Option("vad.floor_margin_db", "--floor-margin-db", float, _SEG.floor_margin_db,
           "a voiced frame must also be this far above the recent noise floor, so babble "
           "and TV are not taken for speech (0: off)", low=0.0, high=60.0),
    Option("vad.floor_window_ms", "--floor-window-ms", int, _SEG.floor_window_ms,
           "the noise floor is the quietest moment of this window", low=100, high=30000),
    Option("vad.onset_db", "--onset-db", float, _SEG.onset_db,
           "a sound this much louder than all of a running segment starts a new one, so a "
           "word that begins while the room talks comes without the chatter before it (0: off)",
           low=0.0, high=60.0),
    Option("vad.release_db", "--release-db", float, _SEG.release_db,
           "inside a segment, frames this far below its loudest count as silence, so a word "
           "ends while the room keeps talking (90: off)", low=6.0, high=90.0),
    Option("vad.release_ms", "--release-ms", int, _SEG.release_ms,
           "frames below that level must fill this much of a segment's end to close it; longer "
           "than the hangover, so the dips between the words of a phrase do not cut it up",
           low=10, high=2000),
    # MQTT
    Option("mqtt.url", "--mqtt", str, "", "publish digits to this broker: "
           "mqtt://[user@]host[:port] or mqtts://... (empty: no MQTT); a password may be "
           "given as user:pass@, but password_file keeps it out of `ps` and this file",
           check=lambda v: None if v == "" else check_mqtt_url(v),
           example="mqtt://digitd@localhost:1883", secret=True),
    Option("mqtt.password_file", "--mqtt-password-file", str, "", "file whose first line is "
           "the broker password (empty: the URL's, or the systemd credential mqtt-password)",
           example="/etc/digitd/mqtt-password"),
    Option("mqtt.max_age_s", "--mqtt-max-age", float, 10.0, "seconds after which a digit "
           "that could not be delivered is dropped instead of published late (a door lock "
           "must not act on an old code)", low=1.0, high=86400.0),
    Option("mqtt.device_id", "--mqtt-device-id", str, "", "topic part naming this recognizer: "
           "digitd/<device-id>/digit (empty: the host name)",
           check=lambda v: None if v == "" else check_device_id(v), example="hallway"),
    Option("mqtt.topic_prefix", "--mqtt-topic-prefix", str, "digitd", "first topic level",
           check=check_device_id),
    Option("mqtt.qos", "--mqtt-qos", int, 1, "MQTT quality of service of digit messages",
           choices=(0, 1, 2)),
    Option("mqtt.queue_size", "--mqtt-queue-size", int, 1000, "digits kept while the broker "
           "is unreachable; beyond this the newest are dropped, counted and logged",
           low=1, high=1_000_000),
    Option("mqtt.keepalive", "--mqtt-keepalive", int, 30, "seconds between MQTT pings",
           low=5, high=3600),
    Option("mqtt.ca_file", "--mqtt-ca-file", str, "", "mqtts: CA certificate(s) to trust "
           "(empty: the system's)", example="/etc/ssl/certs/my-ca.pem"),
    Option("mqtt.cert_file", "--mqtt-cert-file", str, "", "mqtts: client certificate"),
    Option("mqtt.key_file", "--mqtt-key-file", str, "", "mqtts: client key"),
    Option("mqtt.tls_insecure", "--mqtt-tls-insecure", bool, False,
           "mqtts: do not check the broker's host name (self-signed test brokers only)"),
    Option("mqtt.discovery", "--mqtt-discovery", bool, False,
           "announce an event entity to Home Assistant (MQTT discovery)"),
    Option("mqtt.discovery_prefix", "--mqtt-discovery-prefix", str, "homeassistant",
           "Home Assistant's discovery prefix", check=check_device_id),
    # Wyoming server
    Option("wyoming.uri", "--uri", str, "tcp://0.0.0.0:10300", "where the Wyoming server "
           "listens: tcp://HOST:PORT (10300 is speech-to-text's usual port) or unix:///PATH",
           commands=(WYOMING,), check=check_server_uri),
    Option("wyoming.zeroconf", "--zeroconf", bool, False, "announce the server over mDNS "
           "(_wyoming._tcp) so Home Assistant discovers it (needs the zeroconf package)",
           commands=(WYOMING,)),
)
# The segmenter serves every command that runs the model.
OPTIONS = tuple(Option(**{**vars(o), "commands": RECOGNIZING}) if o.key.startswith("vad.")
                else o for o in OPTIONS)
BY_KEY = {option.key: option for option in OPTIONS}
SECTIONS = ("", "rejection", "audio", "vad", "mqtt", "wyoming")


@dataclass
class Settings:
    """Effective settings: key -> value, and where each value came from."""

    values: dict[str, Any]
    origin: dict[str, str]  # "default", the config file path, or "command line"
    file: Path | None

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def segmenter(self) -> SegmenterSettings:
        settings = SegmenterSettings(**{k[4:]: v for k, v in self.values.items()
                                        if k.startswith("vad.")})
        try:
            settings.validate()
        except ValueError as exc:
            raise ConfigError(f"vad settings: {exc}") from exc
        return settings

    def rejection(self) -> dict[str, float]:
        """The rejection limits set in the file or on the command line (RejectionRule
        fields); the model's own for the rest."""
        return {k.partition(".")[2]: v for k, v in self.values.items()
                if k.startswith("rejection.") and v is not None}

    def to_toml(self) -> str:
        """The effective settings as a config file, each line saying where it came from."""
        lines = []
        if self.file is not None:
            lines.append(f"# effective settings; config file: {self.file}")
        else:
            lines.append("# effective settings; no config file found")

        def effective(option: Option, name: str) -> list[str]:
            value, origin = self.values[option.key], self.origin[option.key]
            if value is None:  # TOML has no null: unset means the built-in behaviour
                return [f"# {name} is unset  # {origin}"]
            shown = toml_value(value) if not option.secret else option.shown(value)
            return [f"{name} = {shown}  # {origin}"]

        lines += toml_lines(effective)
        return "\n".join(lines) + "\n"


def toml_lines(render: Callable[[Option, str], list[str]]) -> list[str]:
    """Every option in TOML order (top-level keys, then each table), as `render` writes it."""
    lines: list[str] = []
    for section in SECTIONS:
        if section:
            lines += ["", f"[{section}]"]
        for option in OPTIONS:
            table, _, name = option.key.rpartition(".")
            if table == section:
                lines += render(option, name)
    return lines


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are valid TOML


def find_config_file(explicit: Path | None, environ: dict[str, str] | None = None
                     ) -> Path | None:
    env = os.environ if environ is None else environ
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit}: not found")
        return explicit
    xdg = env.get("XDG_CONFIG_HOME") or (
        str(Path(env["HOME"]) / ".config") if env.get("HOME") else "")
    candidates = ([Path(xdg) / "digitd" / "config.toml"] if xdg else []) + [SYSTEM_CONFIG]
    return next((path for path in candidates if path.is_file()), None)


def read_config_file(path: Path) -> dict[str, Any]:
    """Flat {key: value} from a TOML file, every key known and every value valid."""
    import tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from exc
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict) and name in SECTIONS:
            flat.update({f"{name}.{k}": v for k, v in value.items()})
        else:
            flat[name] = value
    out = {}
    for key, value in flat.items():
        option = BY_KEY.get(key)
        if option is None:
            import difflib

            hint = difflib.get_close_matches(key, BY_KEY, n=1)
            where = f"[{key.split('.')[0]}] table" if isinstance(value, dict) else "key"
            raise ConfigError(f"config file {path}: unknown {where} {key!r}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        try:
            out[key] = option.convert(value)
        except ValueError as exc:
            raise ConfigError(f"config file {path}: {key}: {exc}") from exc
    return out


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Every option of `command` as a flag whose default is 'not given' (file or default
    then decide), plus --config. `config` takes them all: it checks every setting."""
    parser.add_argument("--config", type=Path, default=None,
                        help="config file (default: $XDG_CONFIG_HOME/digitd/config.toml, "
                             "else /etc/digitd/config.toml)")
    groups: dict[str, Any] = {}
    for option in OPTIONS:
        if command not in option.commands and command != "config":
            continue
        section = option.key.rpartition(".")[0]
        if section not in groups:
            groups[section] = parser.add_argument_group(section) if section else parser
        group = groups[section]
        help_text = f"{option.help} [{option.key}]".replace("%", "%%")
        if option.kind is bool:
            group.add_argument(option.flag, dest=option.dest, default=argparse.SUPPRESS,
                               action=argparse.BooleanOptionalAction, help=help_text)
        else:
            group.add_argument(option.flag, dest=option.dest, default=argparse.SUPPRESS,
                               type=_flag_type(option), metavar=_metavar(option),
                               help=help_text)


def _flag_type(option: Option) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value: Any = text
        try:
            if option.kind is int:
                value = int(text)
            elif option.kind is float:
                value = float(text)
            return option.convert(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    parse.__name__ = option.kind.__name__
    return parse


def _metavar(option: Option) -> str:
    if option.choices is not None:
        return "{" + ",".join(str(c) for c in option.choices) + "}"
    return option.key.rpartition(".")[2].upper()


def resolve(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Defaults, then the config file, then what was given on the command line."""
    path = find_config_file(getattr(args, "config", None), environ)
    values = {option.key: option.default for option in OPTIONS}
    origin = dict.fromkeys(values, "default")
    if path is not None:
        from_file = read_config_file(path)
        values.update(from_file)
        origin.update(dict.fromkeys(from_file, str(path)))
    given = {k: v for k, v in vars(args).items() if k in BY_KEY}
    values.update(given)
    origin.update(dict.fromkeys(given, "command line"))
    settings = Settings(values, origin, path)
    settings.segmenter()  # cross-field checks now, not when the first word arrives
    return settings


def example_config() -> str:
    """A commented config file: every key, its meaning and its default."""
    import textwrap

    lines = [
        "# digitd configuration (TOML). Every key is optional; the commented values are the",
        "# defaults. The command line overrides this file. Looked up at --config PATH, else",
        "# $XDG_CONFIG_HOME/digitd/config.toml (~/.config/digitd/config.toml), else",
        "# /etc/digitd/config.toml. Check a file with: digitd config --check --config FILE",
    ]

    def commented(option: Option, name: str) -> list[str]:
        about = f"{option.help} ({option.describe_type()}; {option.flag})"
        out = textwrap.wrap(about, 96, initial_indent="# ", subsequent_indent="#   ")
        if option.default not in (None, ""):
            return out + [f"# {name} = {toml_value(option.default)}"]
        if option.example is not None:
            return out + [f"# {name} = {toml_value(option.example)}  # an example; unset by "
                          "default"]
        return out + [f"# {name} = \"\""]

    return "\n".join(lines + toml_lines(commented)) + "\n"
