"""The shipped systemd units: systemd-analyze verifies them and rates their hardening."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SYSTEM_UNIT = REPO / "systemd" / "digitd.service"
USER_UNIT = REPO / "systemd" / "user" / "digitd.service"
WYOMING_UNIT = REPO / "systemd" / "digitd-wyoming.service"
WYOMING_USER_UNIT = REPO / "systemd" / "user" / "digitd-wyoming.service"
UNITS = {"system": (SYSTEM_UNIT, []), "user": (USER_UNIT, ["--user"]),
         "wyoming": (WYOMING_UNIT, []), "wyoming-user": (WYOMING_USER_UNIT, ["--user"])}
DIGITD = Path(sys.executable).parent / "digitd"  # the entry point of this install



@pytest.fixture(autouse=True)
def _needs_systemd_analyze():
    assert shutil.which("systemd-analyze"), "no systemd-analyze: scripts/install-system-packages"


def installed_copy(unit: Path, tmp_path: Path) -> Path:
    """The unit as installed here: ExecStart pointing at this environment's digitd (verify
    checks that the binary exists)."""
    text = unit.read_text()
    text = text.replace("/opt/digitd/bin/digitd", str(DIGITD))
    text = text.replace("%h/.local/bin/digitd", str(DIGITD))
    out = tmp_path / unit.name
    out.write_text(text)
    return out


def analyze(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "XDG_RUNTIME_DIR": str(runtime),
           "SYSTEMD_LOG_LEVEL": "notice"}
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("unit, mode", list(UNITS.values()), ids=list(UNITS))
def test_units_verify_cleanly(unit, mode, tmp_path):
    assert DIGITD.exists(), f"{DIGITD} missing: install the package first"
    done = analyze(*mode, "verify", str(installed_copy(unit, tmp_path)), tmp_path=tmp_path)
    # verify exits 0 even for an ignored bad line; any message about the unit is a failure
    assert done.returncode == 0 and unit.name not in done.stdout + done.stderr, (
        done.stdout + done.stderr)


def test_verify_would_catch_a_broken_unit(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    unit = installed_copy(SYSTEM_UNIT, broken)
    unit.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    done = analyze("verify", str(unit), tmp_path=tmp_path)
    assert "Failed to parse service type" in done.stdout + done.stderr


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, WYOMING_UNIT], ids=["listen", "wyoming"])
def test_system_unit_exposure_is_at_most_2_5(unit, tmp_path):
    done = analyze("security", "--offline=yes", str(installed_copy(unit, tmp_path)),
                   tmp_path=tmp_path)
    match = re.search(rf"Overall exposure level for {re.escape(unit.name)}: (\d+\.\d+)",
                      done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= 2.5, done.stdout


@pytest.mark.parametrize("unit, command", [(SYSTEM_UNIT, "listen"), (USER_UNIT, "listen"),
                                           (WYOMING_UNIT, "wyoming"),
                                           (WYOMING_USER_UNIT, "wyoming")])
def test_units_speak_notify_with_a_watchdog(unit, command):
    text = unit.read_text()
    for line in ("Type=notify", "NotifyAccess=main", "Restart=on-failure"):
        assert line in text.splitlines(), line
    assert re.search(r"^WatchdogSec=\d+", text, re.M)
    assert re.search(r"^StartLimitBurst=\d+", text, re.M)
    assert re.search(rf"^ExecStart=\S+/digitd {command}", text, re.M)


def test_the_system_units_keep_secrets_and_ask_for_their_config():
    listen, server = SYSTEM_UNIT.read_text(), WYOMING_UNIT.read_text()
    assert re.search(r"^ExecStart=\S+/digitd listen --stdout unless-mqtt", listen, re.M)
    for text in (listen, server):
        lines = text.splitlines()
        assert "AssertPathExists=/etc/digitd/config.toml" in lines
        for line in ("IPAddressDeny=any", "SocketBindDeny=any", "PrivateIPC=yes"):
            assert line in lines, line
    assert "SocketBindAllow=tcp:10300" in server.splitlines()


def test_system_unit_reads_only_alsa_devices_as_an_unprivileged_user():
    lines = SYSTEM_UNIT.read_text().splitlines()
    assert "DynamicUser=yes" in lines
    assert "SupplementaryGroups=audio" in lines
    assert "DevicePolicy=closed" in lines
    assert [x for x in lines if x.startswith("DeviceAllow=")] == ["DeviceAllow=char-alsa rw"]
