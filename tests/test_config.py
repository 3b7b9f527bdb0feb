"""The config file: every key round-trips, the command line wins, bad files say what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from digitd.daemon.cli import build_parser
from digitd.daemon.config import (
    OPTIONS,
    ConfigError,
    example_config,
    find_config_file,
    read_config_file,
    resolve,
    toml_value,
)

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "digitd.daemon.cli"]


def non_default(option):
    """A valid value different from the default, for every option."""
    if option.default is None:  # unset unless given: the example is a value
        return option.example
    if option.choices is not None:
        return next(c for c in option.choices if c != option.default)
    if option.kind is bool:
        return not option.default
    if option.kind is str:
        return {"mqtt.url": "mqtt://u:p@broker.example:1884",
                "wyoming.uri": "tcp://127.0.0.1:10301"}.get(option.key, "custom-value")
    value = option.default + 1 if option.kind is int else round(option.default * 0.9, 3)
    return value


def as_toml(values: dict) -> str:
    tables: dict[str, list[str]] = {"": []}
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        tables.setdefault(section, []).append(f"{name} = {toml_value(value)}")
    text = "\n".join(tables.pop(""))
    for section, lines in tables.items():
        text += f"\n[{section}]\n" + "\n".join(lines)
    return text + "\n"


def parse(argv: list[str]):
    return build_parser().parse_args(argv)


def test_every_key_round_trips_through_a_file(tmp_path):
    values = {o.key: non_default(o) for o in OPTIONS}
    # the segmenter's cross-checks must hold for the changed values too
    path = tmp_path / "config.toml"
    path.write_text(as_toml(values))
    settings = resolve(parse(["config", "--check", "--config", str(path)]))
    for option in OPTIONS:
        assert settings[option.key] == values[option.key], option.key
        assert settings.origin[option.key] == str(path)
    # and the effective settings printed by `config --check` read back to the same values,
    # but for passwords, which are never printed
    from digitd.daemon.mqtt import redact

    printed = tmp_path / "printed.toml"
    printed.write_text(settings.to_toml())
    secret = {o.key for o in OPTIONS if o.secret}
    assert secret == {"mqtt.url"} and ":p@" in values["mqtt.url"]
    assert read_config_file(printed) == {k: redact(v) if k in secret else v
                                         for k, v in values.items()}
    assert ":p@" not in printed.read_text()


def test_every_option_is_a_flag_and_the_command_line_wins(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(as_toml({o.key: non_default(o) for o in OPTIONS}))
    argv = ["config", "--check", "--config", str(path)]
    given = {o.key: o.default if o.default is not None else o.low for o in OPTIONS}
    for option in OPTIONS:
        if option.kind is bool:
            argv.append(option.flag if option.default else f"--no-{option.flag[2:]}")
        else:
            argv += [option.flag, str(given[option.key])]
    settings = resolve(parse(argv))
    for option in OPTIONS:
        assert settings[option.key] == given[option.key], option.key
        assert settings.origin[option.key] == "command line"


@pytest.mark.parametrize("text, message", [
    ("[vad]\nagressiveness = 2\n", "unknown key 'vad.agressiveness' (did you mean "
                                   "'vad.aggressiveness'?)"),
    ("[sound]\nrate = 8000\n", "unknown [sound] table 'sound'"),
    ("colour = 'blue'\n", "unknown key 'colour'"),
    ("[vad]\naggressiveness = '2'\n", "vad.aggressiveness: expected one of 0, 1, 2, 3, got \"2\""),
    ("[vad]\naggressiveness = 7\n", "vad.aggressiveness: expected one of 0, 1, 2, 3, got 7"),
    ("[audio]\nblock_ms = 1000\n", "audio.block_ms: expected an integer in 5..200, got 1000"),
    ("[vad]\ntrigger_ratio = true\n", "vad.trigger_ratio: expected a number in 0.01..1, "
                                      "got true"),
    ("verbose = 1\n", "verbose: expected true or false, got 1"),
    ("format = 'xml'\n", "format: expected one of \"text\", \"jsonl\", got \"xml\""),
    ("[mqtt]\nurl = 'http://broker'\n", "mqtt.url: \"http://broker\" must start with mqtt://"),
    ("[mqtt]\nurl = 'mqtt://broker:99999'\n", "mqtt.url: \"mqtt://broker:99999\" bad port"),
    ("[mqtt]\ndevice_id = 'a/b'\n", "mqtt.device_id: \"a/b\" must be non-empty, without '/'"),
    ("[vad]\naggressiveness = 2\n[vad]\nframe_ms = 10\n", "not valid TOML"),
    ("[vad]\nmin_speech_ms = 900\nmax_segment_ms = 800\n",
     "vad settings: max_segment_ms must exceed min_speech_ms"),
])
def test_bad_config_names_file_key_and_reason(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        resolve(parse(["listen", "--config", str(path)]))
    assert str(path) in str(caught.value) or message.startswith("vad settings")
    assert message in str(caught.value)


def test_bad_config_stops_the_daemon_at_start_with_a_clear_message(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[vad]\naggressiveness = 9\n")
    done = subprocess.run([*CLI, "listen", "--input", "-", "--config", str(path)],
                          input=b"", capture_output=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == b""
    assert f"config file {path}: vad.aggressiveness: expected one of 0, 1, 2, 3, got 9" in (
        done.stderr.decode())
    missing = subprocess.run([*CLI, "config", "--check", "--config", str(tmp_path / "nope")],
                             capture_output=True, timeout=60)
    assert missing.returncode == 2 and b"nope: not found" in missing.stderr
    bad_flag = subprocess.run([*CLI, "listen", "--block-ms", "1"], capture_output=True,
                              timeout=60)
    assert bad_flag.returncode == 2 and b"expected an integer in 5..200, got 1" in (
        bad_flag.stderr)


def test_config_is_found_in_xdg_then_etc(tmp_path, monkeypatch):
    xdg = tmp_path / "xdg"
    (xdg / "digitd").mkdir(parents=True)
    (xdg / "digitd" / "config.toml").write_text("format = 'jsonl'\n")
    env = {"XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path)}
    assert find_config_file(None, env) == xdg / "digitd" / "config.toml"
    home_default = tmp_path / ".config" / "digitd" / "config.toml"
    home_default.parent.mkdir(parents=True)
    home_default.write_text("")
    assert find_config_file(None, {"HOME": str(tmp_path)}) == home_default
    monkeypatch.setattr("digitd.daemon.config.SYSTEM_CONFIG", tmp_path / "etc.toml")
    assert find_config_file(None, {"HOME": str(tmp_path / "none")}) is None
    (tmp_path / "etc.toml").write_text("")
    assert find_config_file(None, {"HOME": str(tmp_path / "none")}) == tmp_path / "etc.toml"
    # the daemon really reads it: jsonl output from the XDG file
    done = subprocess.run([*CLI, "demo"], capture_output=True, timeout=120,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().lstrip().startswith("{")


def test_example_config_is_shipped_complete_and_valid(tmp_path):
    shipped = (REPO / "systemd" / "config.example.toml").read_text()
    assert shipped == example_config(), "regenerate: digitd config --example > systemd/..."
    done = subprocess.run([*CLI, "config", "--example"], capture_output=True, timeout=60)
    assert done.stdout.decode() == shipped
    # Uncommenting every key line gives a valid file that sets every key.
    lines = []
    for line in shipped.splitlines():
        body = line[2:] if line.startswith("# ") else line
        if " = " in body and not body.startswith(" "):
            lines.append(body)
        elif line.startswith("["):
            lines.append(line)
    path = tmp_path / "uncommented.toml"
    path.write_text("\n".join(lines) + "\n")
    values = read_config_file(path)
    assert set(values) == {o.key for o in OPTIONS}
    assert tomllib.loads(path.read_text())  # plain TOML too


def test_config_check_prints_effective_settings(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[vad]\naggressiveness = 3\n")
    done = subprocess.run([*CLI, "config", "--check", "--config", str(path), "--format",
                           "jsonl"], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert f"aggressiveness = 3  # {path}" in out
    assert 'format = "jsonl"  # command line' in out
    assert "hangover_ms = 100  # default" in out


@pytest.mark.parametrize("text", ["[rejection]\nmax_unknown = nan\n",
                                  "[rejection]\nmin_confidence = inf\n"])
def test_non_finite_values_are_refused_at_start(tmp_path, text):
    """nan compares false with every limit: it passed the range check and then rejected
    every digit silently."""
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="expected a number in 0..1"):
        resolve(parse(["listen", "--config", str(path)]))
    with pytest.raises(SystemExit):
        parse(["listen", "--max-unknown", "nan"])


def test_a_limit_that_rejects_everything_is_warned_about(recordings):
    done = subprocess.run([sys.executable, "-m", "digitd.daemon.cli", "recognize", "--whole",
                           "--max-unknown", "0", str(recordings / "6_theo_12.wav")],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["-"]
    assert "rejection.max_unknown = 0 rejects every digit" in done.stderr
