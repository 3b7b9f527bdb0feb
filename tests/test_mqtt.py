"""MQTT against a real Mosquitto broker on loopback: payload, outage, credentials, last will."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from importlib import resources

import numpy as np
import pytest

from .daemon import CLI, Daemon
from .mosquitto import Mosquitto, Subscriber, free_port, make_certificates
from .streams import build_stream, clear_takes

SAMPLE = str(resources.files("digitd.daemon").joinpath("samples/four-two-seven.wav"))
PAYLOAD_KEYS = {"file", "digit", "confidence", "start", "end", "latency_ms", "time",
                "event_type"}


@pytest.fixture()
def broker(tmp_path):
    server = Mosquitto(tmp_path / "broker").start()
    yield server
    server.stop()


def test_recognize_publishes_each_digit_with_the_documented_payload(broker):
    sub = Subscriber(broker, topic="#")
    try:
        done = subprocess.run([*CLI, "recognize", SAMPLE, "--mqtt", broker.url(),
                               "--mqtt-device-id", "hall", "--mqtt-discovery"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["4", "2", "7"]
        messages = sub.wait("hall/digit", 3, timeout=10)
        availability = sub.wait("hall/availability", 2, timeout=5)
        discovery = sub.wait("homeassistant/event/hall/digit/config", 1, timeout=5)
    finally:
        sub.close()
    assert [m.topic for m in messages] == ["digitd/hall/digit"] * 3
    payloads = [json.loads(m.payload) for m in messages]
    assert [p["digit"] for p in payloads] == [4, 2, 7]
    assert all(set(p) == PAYLOAD_KEYS for p in payloads), payloads
    assert all(p["event_type"] == str(p["digit"]) and p["file"] == SAMPLE for p in payloads)
    assert all(m.qos == 1 for m in messages)
    assert [m.payload for m in availability] == [b"online", b"offline"]
    config = json.loads(discovery[0].payload)
    assert config["state_topic"] == "digitd/hall/digit"
    assert config["event_types"] == [str(d) for d in range(10)]
    assert config["availability_topic"] == "digitd/hall/availability"
    # retained: whoever subscribes later learns the device is offline and how to show it
    late = Subscriber(broker, topic="#")
    try:
        time.sleep(0.5)
        retained = {m.topic: m.payload for m in late.messages if m.retain}
    finally:
        late.close()
    assert retained["digitd/hall/availability"] == b"offline"
    assert "homeassistant/event/hall/digit/config" in retained


def test_broker_outage_mid_stream_loses_no_digit(broker, recordings):
    names = clear_takes(recordings, [(2, "jackson"), (9, "theo"), (4, "nicolas"),
                                     (7, "lucas"), (0, "george")])
    parts = [build_stream(recordings, names[i:j], [0.8] * (j - i), seed=i)
             for i, j in ((0, 2), (2, 4), (4, 5))]
    sub = Subscriber(broker)
    daemon = Daemon("--input", "-", "--rate", "8000", "--mqtt", broker.url(), "--mqtt-device-id",
                    "door", stdin=True)
    try:
        daemon.say(parts[0].samples)
        assert daemon.digits(2, timeout=20) == [2, 9], daemon.log()
        assert len(sub.wait("door/digit", 2, timeout=10)) == 2, daemon.log()

        broker.stop()  # the broker goes down mid-stream ...
        daemon.say(parts[1].samples)
        assert daemon.digits(2, timeout=20) == [4, 7]  # ... digits are still recognized
        time.sleep(1.0)
        broker.start()  # ... and it comes back
        daemon.say(parts[2].samples)
        assert daemon.digits(1, timeout=20) == [0]
        delivered = sub.wait("door/digit", 5, timeout=45)
        daemon.proc.stdin.close()
        assert daemon.proc.wait(timeout=15) == 0
    finally:
        daemon.kill()
        sub.close()
    assert [json.loads(m.payload)["digit"] for m in delivered] == [2, 9, 4, 7, 0], (
        daemon.log())
    log = daemon.log()
    assert "MQTT connection to" in log and "lost" in log
    assert log.count("lost (") == 1  # logged once per state change, not per retry


def test_wrong_password_is_a_clear_error(tmp_path):
    broker = Mosquitto(tmp_path / "auth", users={"digitd": "right-secret"}).start()
    try:
        done = subprocess.run([*CLI, "recognize", SAMPLE, "--mqtt",
                               broker.url("digitd:wrong-secret")],
                              capture_output=True, text=True, timeout=60)
        ok = subprocess.run([*CLI, "recognize", SAMPLE, "--mqtt",
                             broker.url("digitd:right-secret")],
                            capture_output=True, text=True, timeout=60)
    finally:
        broker.stop()
    assert done.returncode == 2
    assert "refused the connection" in done.stderr
    assert "Not authorized" in done.stderr or "Bad user name or password" in done.stderr
    assert "check the user and password" in done.stderr
    assert "wrong-secret" not in done.stderr
    assert done.stdout == ""  # stopped at start, before recognizing anything
    assert ok.returncode == 0, ok.stderr


def test_last_will_says_offline_when_the_daemon_is_killed(broker):
    sub = Subscriber(broker)
    daemon = Daemon("--input", "-", "--rate", "8000", "--mqtt", broker.url(), "--mqtt-device-id",
                    "kitchen", stdin=True)
    try:
        daemon.say(np.zeros(8000))
        online = sub.wait("kitchen/availability", 1, timeout=20)
        assert [m.payload for m in online] == [b"online"], daemon.log()
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(timeout=5)
        messages = sub.wait("kitchen/availability", 2, timeout=10)
    finally:
        daemon.kill()
        sub.close()
    assert [m.payload for m in messages] == [b"online", b"offline"]


def test_unreachable_broker_and_full_queue_are_reported_not_fatal():
    port = free_port()  # nothing listens here
    done = subprocess.run([*CLI, "recognize", SAMPLE, "--mqtt", f"mqtt://127.0.0.1:{port}",
                           "--mqtt-queue-size", "2"], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["4", "2", "7"]  # stdout still gets every digit
    assert "not reachable yet (127.0.0.1 port" in done.stderr
    assert "Connection refused" in done.stderr
    assert "MQTT queue full" in done.stderr and "dropped digit 7" in done.stderr
    assert "2 digit(s) not delivered" in done.stderr
    assert done.returncode == 1  # a script learns that delivery failed


def test_a_host_name_that_does_not_resolve_says_so():
    done = subprocess.run([*CLI, "recognize", SAMPLE, "--mqtt", "mqtt://no-such-host.invalid"],
                          capture_output=True, text=True, timeout=60)
    assert "no-such-host.invalid:1883 not reachable yet (the host name does not resolve" in (
        done.stderr)
    assert done.stdout.split() == ["4", "2", "7"]


def test_missing_tls_file_is_a_clear_error(tmp_path):
    done = subprocess.run([*CLI, "recognize", SAMPLE, "--mqtt", "mqtts://127.0.0.1:8883",
                           "--mqtt-ca-file", str(tmp_path / "no-ca.pem")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"mqtt.ca_file: no such file {tmp_path / 'no-ca.pem'}" in done.stderr


def test_mqtts_with_a_private_ca(tmp_path):
    ca, cert, key = make_certificates(tmp_path / "tls")
    broker = Mosquitto(tmp_path / "tls-broker", tls=(ca, cert, key)).start()
    try:
        trusted = subprocess.run([*CLI, "recognize", SAMPLE, "--mqtt", broker.url(),
                                  "--mqtt-ca-file", str(ca)],
                                 capture_output=True, text=True, timeout=60)
        untrusted = subprocess.run([*CLI, "recognize", SAMPLE, "--mqtt", broker.url()],
                                   capture_output=True, text=True, timeout=60)
    finally:
        broker.stop()
    assert trusted.returncode == 0, trusted.stderr
    assert "MQTT connected" in trusted.stderr and "not delivered" not in trusted.stderr
    # the system's CAs do not trust the test CA: nothing is delivered, and it says so
    assert untrusted.returncode == 1
    assert "3 digit(s) not delivered" in untrusted.stderr
    assert "mqtts: is the broker's certificate signed by a CA" in untrusted.stderr


def test_a_digit_older_than_max_age_is_never_published(broker, recordings):
    """A door lock must not act on a code said while the broker was down long ago: a digit
    that waited longer than --mqtt-max-age is dropped and counted; a fresh one goes out
    within seconds of the broker's return."""
    names = clear_takes(recordings, [(2, "jackson"), (9, "theo"), (4, "nicolas")])
    parts = [build_stream(recordings, [name], [0.8], seed=i) for i, name in enumerate(names)]
    sub = Subscriber(broker)
    daemon = Daemon("--input", "-", "--rate", "8000", "--mqtt", broker.url(), "--mqtt-device-id",
                    "lock", "--mqtt-max-age", "2", stdin=True)
    try:
        daemon.say(parts[0].samples)
        assert daemon.digits(1, timeout=20) == [2], daemon.log()
        assert len(sub.wait("lock/digit", 1, timeout=10)) == 1, daemon.log()
        broker.kill()  # the broker crashes ...
        daemon.say(parts[1].samples)
        assert daemon.digits(1, timeout=20) == [9]  # ... a digit is said meanwhile ...
        time.sleep(3.0)  # ... and grows older than 2 s before the broker is back
        broker.start()
        back = time.monotonic()
        daemon.wait_for_log("dropped, never published", timeout=20)
        waited = time.monotonic() - back
        daemon.say(parts[2].samples)
        assert daemon.digits(1, timeout=20) == [4]
        sub.wait("lock/digit", 2, timeout=20)
        time.sleep(1.0)  # a late stale digit would arrive now
        delivered = sub.on("lock/digit")
        daemon.proc.stdin.close()
        daemon.proc.wait(timeout=15)
    finally:
        daemon.kill()
        sub.close()
    assert [json.loads(m.payload)["digit"] for m in delivered] == [2, 4], daemon.log()
    assert waited < 8, f"reconnected {waited:.1f} s after the broker came back"
    assert "1 digit(s) older than 2 s dropped, never published" in daemon.log()


def test_passwords_never_reach_a_log_or_the_settings_printout(tmp_path):
    secret = "hunter2-never-print"
    broker = Mosquitto(tmp_path / "auth", users={"digitd": secret}).start()
    password_file = tmp_path / "mqtt-password"
    password_file.write_text(secret + "\n")
    config = tmp_path / "config.toml"
    config.write_text(f'[mqtt]\nurl = "mqtt://digitd:{secret}@127.0.0.1:{broker.port}"\n')
    try:
        runs = {
            "malformed flag": [*CLI, "recognize", SAMPLE, "--mqtt", f"mqtt//digitd:{secret}@x"],
            "check": [*CLI, "config", "--check", "--config", str(config)],
            "wrong password": [*CLI, "recognize", SAMPLE, "--mqtt",
                               broker.url(f"digitd:{secret}-wrong")],
            "password file": [*CLI, "recognize", SAMPLE, "--mqtt", broker.url("digitd"),
                              "--mqtt-password-file", str(password_file)],
        }
        done = {k: subprocess.run(v, capture_output=True, text=True, timeout=60)
                for k, v in runs.items()}
    finally:
        broker.stop()
    for name, run in done.items():
        assert secret not in run.stdout + run.stderr, name
    assert done["malformed flag"].returncode == 2
    assert "mqtt//digitd:***@x" in done["malformed flag"].stderr
    assert 'url = "mqtt://digitd:***@127.0.0.1' in done["check"].stdout
    assert done["wrong password"].returncode == 2
    assert done["wrong password"].stderr.count("refused the connection") == 1
    assert done["password file"].returncode == 0, done["password file"].stderr
    assert done["password file"].stdout.split() == ["4", "2", "7"]


def test_digits_stay_out_of_stdout_when_mqtt_delivers_them(broker):
    """The system unit's --stdout unless-mqtt: a door lock's codes are not journal lines."""
    sub = Subscriber(broker)
    try:
        done = subprocess.run([*CLI, "recognize", SAMPLE, "--mqtt", broker.url(),
                               "--mqtt-device-id", "gate", "--stdout", "unless-mqtt"],
                              capture_output=True, text=True, timeout=60)
        messages = sub.wait("gate/digit", 3, timeout=10)
    finally:
        sub.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert [json.loads(m.payload)["digit"] for m in messages] == [4, 2, 7]
    alone = subprocess.run([*CLI, "recognize", SAMPLE, "--stdout", "unless-mqtt"],
                           capture_output=True, text=True, timeout=60)
    assert alone.stdout.split() == ["4", "2", "7"]  # without MQTT stdout is the output
    nowhere = subprocess.run([*CLI, "recognize", SAMPLE, "--stdout", "off"],
                             capture_output=True, text=True, timeout=60)
    assert nowhere.returncode == 2 and "would go nowhere" in nowhere.stderr
