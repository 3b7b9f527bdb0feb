"""MQTT sink: each recognized digit as JSON to `<prefix>/<device-id>/digit`, QoS 1.

  <prefix>/<device-id>/digit         {"digit", "confidence", "start", "end", "latency_ms",
                                      "time", "event_type"} (+ "file" for recognize)
  <prefix>/<device-id>/availability  "online" / "offline", retained; "offline" is also the
                                      last will, so a killed daemon is seen as offline

paho-mqtt's network thread reconnects with backoff (1-5 s) and keeps unacknowledged QoS 1/2
messages (ours, published while the broker is down) in a bounded queue, resending them in
order after the reconnection; a full queue drops the new digit, counted and logged. A digit
older than `max_age_s` is never published: a door lock must not act on a code said a minute
ago. Digits still queued at a reconnection past that age are dropped, counted and logged,
and under MQTT 5 each message carries that age as its expiry interval, so the broker does not
hand it late to a subscriber that was away. With `discovery`, a Home Assistant event entity
is announced (retained), with event types "0".."9", so automations can trigger on "digit 4".

The password comes from the URL, `password_file`, or the systemd credential `mqtt-password`
($CREDENTIALS_DIRECTORY), and is never printed: URLs in messages are redacted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from digitd import __version__

log = logging.getLogger(__name__)


class MqttError(Exception):
    """The broker cannot be used: bad URL, bad credentials, TLS files, paho missing."""


def redact(url: str) -> str:
    """The URL with any password replaced by ***, even in a malformed URL."""
    head, sep, rest = url.partition("//")
    if not sep:
        head, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{head}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


def read_password(path: str) -> str:
    """The first line of a password file; MqttError when unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise MqttError(f"mqtt.password_file {path}: cannot read ({exc})") from exc


def credential_password(environ: dict[str, str] | None = None) -> str | None:
    """systemd's LoadCredential=mqtt-password:..., when the unit passes one."""
    folder = (os.environ if environ is None else environ).get("CREDENTIALS_DIRECTORY")
    path = os.path.join(folder, "mqtt-password") if folder else ""
    return read_password(path) if path and os.path.isfile(path) else None


@dataclass(frozen=True)
class MqttSettings:
    url: str
    device_id: str = ""
    topic_prefix: str = "digitd"
    qos: int = 1
    queue_size: int = 1000
    keepalive: int = 30
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    tls_insecure: bool = False
    discovery: bool = False
    discovery_prefix: str = "homeassistant"
    max_age_s: float = 10.0
    password_file: str = ""

    @classmethod
    def from_settings(cls, settings: Any) -> MqttSettings:
        return cls(**{key[5:]: settings[key] for key in settings.values
                      if key.startswith("mqtt.")})


def default_device_id() -> str:
    name = socket.gethostname().split(".")[0] or "digitd"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


class MqttPublisher:
    """Publishes digits; `start()` connects, `close()` flushes and says offline."""

    name = "mqtt"

    def __init__(self, settings: MqttSettings) -> None:
        try:
            import paho.mqtt.client  # noqa: F401
        except ImportError as exc:
            raise MqttError("MQTT needs paho-mqtt 2: pip install 'digitd[mqtt]'") from exc
        self.settings = settings
        parts = urlsplit(settings.url)
        try:
            port = parts.port
        except ValueError:
            port, parts = None, parts._replace(netloc="")
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise MqttError(f"bad MQTT URL {redact(settings.url)!r}: expected "
                            "mqtt://[user@]host[:port] or mqtts://...")
        self.host = parts.hostname
        self.port = port or (8883 if parts.scheme == "mqtts" else 1883)
        self._user = unquote(parts.username) if parts.username is not None else None
        self._password = self._find_password(parts.password)
        self._tls = parts.scheme == "mqtts"
        self.device_id = settings.device_id or default_device_id()
        base = f"{settings.topic_prefix}/{self.device_id}"
        self.digit_topic = f"{base}/digit"
        self.number_topic = f"{base}/number"
        self.availability_topic = f"{base}/availability"
        self._lock = threading.Lock()
        self._pending: dict[int, float] = {}  # published, not yet acknowledged: mid -> born
        self._acked_early: set[int] = set()  # acknowledged before publish() returned
        self._first_result = threading.Event()
        self._refused: str | None = None
        self.connected = False
        self._closing = False
        self.published = self.dropped = self.expired = 0
        self.mqtt5 = True
        self._client = self._make_client()

    def _find_password(self, in_url: str | None) -> str | None:
        if self.settings.password_file:
            return read_password(self.settings.password_file)
        if in_url is not None:
            return unquote(in_url)
        return credential_password()

    def _make_client(self):
        """A paho client for MQTT 5 (message expiry), or 3.1.1 once a broker refused 5."""
        import paho.mqtt.client as paho

        client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                             client_id=f"digitd-{self.device_id}-{os.getpid()}",
                             protocol=paho.MQTTv5 if self.mqtt5 else paho.MQTTv311)
        if self._user is not None or self._password:
            client.username_pw_set(self._user or "", self._password or None)
        self._client = client
        if self._tls:
            self._configure_tls()
        client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        client.max_queued_messages_set(self.settings.queue_size)
        client.reconnect_delay_set(min_delay=1, max_delay=5)  # back within seconds of the broker
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def redacted_url(self) -> str:
        return redact(self.settings.url)

    def _configure_tls(self) -> None:
        import ssl

        s = self.settings
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(s, name)
            if path and not os.path.isfile(path):
                raise MqttError(f"mqtt.{name}: no such file {path}")
        try:
            self._client.tls_set(ca_certs=s.ca_file or None, certfile=s.cert_file or None,
                                 keyfile=s.key_file or None, cert_reqs=ssl.CERT_REQUIRED)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise MqttError(f"TLS settings unusable: {exc}") from exc
        self._client.tls_insecure_set(s.tls_insecure)

    # paho callbacks, on its network thread
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            # once per change, not once per retry; at start, start() says it
            if self._refused != str(reason_code) and self._first_result.is_set():
                log.error("MQTT broker %s:%d refused the connection: %s", self.host,
                          self.port, reason_code)
            self._refused = str(reason_code)
            self._first_result.set()
            return
        self._refused = None
        self.connected = True
        self._drop_stale(client)
        with self._lock:
            queued = len(self._pending)
        log.info("MQTT connected to %s:%d; publishing to %s%s", self.host, self.port,
                 self.digit_topic, f" ({queued} queued digits to deliver)" if queued else "")
        client.publish(self.availability_topic, "online", qos=1, retain=True)
        if self.settings.discovery:
            for topic, config in self.discovery():
                client.publish(topic, json.dumps(config), qos=1, retain=True)
        self._first_result.set()

    def _drop_stale(self, client) -> None:
        """Before paho resends what waited for the broker: withdraw digits older than
        max_age_s (paho has no public call to withdraw a queued message)."""
        now = time.monotonic()
        with self._lock:
            stale = [mid for mid, born in self._pending.items()
                     if now - born > self.settings.max_age_s]
            for mid in stale:
                del self._pending[mid]
        if not stale:
            return
        try:
            with client._out_message_mutex:
                for mid in stale:
                    client._out_messages.pop(mid, None)
        except AttributeError:  # another paho version: say so rather than publish late
            log.error("MQTT: cannot withdraw %d stale digit(s) from this paho-mqtt version; "
                      "they may arrive late", len(stale))
            return
        self.expired += len(stale)
        log.warning("MQTT: %d digit(s) older than %g s dropped, never published (%d so far)",
                    len(stale), self.settings.max_age_s, self.expired)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected and not self._closing:
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting, digits are queued",
                        self.host, self.port, reason_code)
        self.connected = False

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            if mid in self._pending:
                del self._pending[mid]
            else:
                self._acked_early.add(mid)

    def start(self, wait_seconds: float = 3.0) -> None:
        """Connect in the background; a refusal (bad credentials) within `wait_seconds` is
        an error, an unreachable broker only a warning: digits queue until it is back."""
        try:
            self._client.connect_async(self.host, self.port, keepalive=self.settings.keepalive)
        except (OSError, ValueError) as exc:
            raise MqttError(f"MQTT broker {self.host}:{self.port}: {exc}") from exc
        self._client.loop_start()
        self._first_result.wait(wait_seconds)
        if self._refused is not None and "protocol version" in self._refused.lower() and (
                self.mqtt5):
            self._client.loop_stop()  # a broker older than MQTT 5: 3.1.1, no message expiry
            log.info("MQTT broker %s:%d does not speak MQTT 5; using 3.1.1", self.host,
                     self.port)
            self.mqtt5, self._refused = False, None
            self._first_result.clear()
            self._make_client()
            return self.start(wait_seconds)
        self._first_result.set()  # from here on, a refusal is logged by _on_connect
        if self._refused is not None:
            self._client.loop_stop()
            raise MqttError(f"MQTT broker {self.host}:{self.port} refused the connection: "
                            f"{self._refused} (check the user and password: mqtt.url, "
                            "mqtt.password_file)")
        if not self.connected:
            log.warning("MQTT broker %s:%d not reachable yet (%s); retrying with backoff, up "
                        "to %d digits are queued meanwhile", self.host, self.port,
                        self._why_unreachable(), self.settings.queue_size)

    def _why_unreachable(self) -> str:
        """The likeliest reason, for the first warning: DNS, the port, or TLS."""
        try:
            address = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][4]
        except (socket.gaierror, UnicodeError) as exc:
            return f"the host name does not resolve: {exc.args[-1] if exc.args else exc}"
        try:
            socket.create_connection(address[:2], timeout=2).close()
        except OSError as exc:
            return f"{address[0]} port {self.port}: {exc.strerror or exc}"
        if self._tls:
            return ("mqtts: is the broker's certificate signed by a CA in mqtt.ca_file or "
                    "the system's, for this host name?")
        return "no answer to MQTT's CONNECT yet"

    def publish(self, payload: dict[str, Any], topic: str | None = None) -> None:
        import paho.mqtt.client as paho

        properties = None
        if self.mqtt5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = max(1, math.ceil(self.settings.max_age_s))
        info = self._client.publish(topic or self.digit_topic, json.dumps(payload),
                                    qos=self.settings.qos, properties=properties)
        if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            self.dropped += 1
            log.warning("MQTT queue full (%d digits waiting for the broker): dropped digit %s "
                        "(%d dropped so far)", self.settings.queue_size, payload.get("digit"),
                        self.dropped)
            return
        if self.settings.qos == 0:  # fire and forget: nothing will acknowledge it
            if info.rc == paho.MQTT_ERR_NO_CONN:
                self.dropped += 1
                log.warning("MQTT broker unreachable: digit %s lost (qos 0 is not queued)",
                            payload.get("digit"))
            else:
                self.published += 1
            return
        self.published += 1
        with self._lock:
            if info.mid in self._acked_early:
                self._acked_early.discard(info.mid)
            else:
                self._pending[info.mid] = time.monotonic()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def __call__(self, events, file: str | None = None) -> None:
        for event in events:
            if event.digit is None:
                continue
            if hasattr(event, "number"):  # --numbers: the whole number, on its own topic
                self.publish({**event.row(file), "event_type": "number"}, self.number_topic)
            else:
                self.publish({**event.row(file), "event_type": str(event.digit)})

    def close(self, flush_seconds: float = 5.0) -> int:
        """Wait for queued digits to be acknowledged, say offline, disconnect.
        Returns how many digits were not delivered (dropped or never acknowledged)."""
        deadline = time.monotonic() + flush_seconds
        while self.pending and self.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.pending:
            log.warning("MQTT: %d digit(s) not delivered (broker %s)", self.pending,
                        "unreachable" if not self.connected else "slow to acknowledge")
        if self.connected:
            info = self._client.publish(self.availability_topic, "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # not sent: will says offline
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        undelivered = self.pending + self.dropped + self.expired
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()
        return undelivered

    def discovery(self) -> list[tuple[str, dict[str, Any]]]:
        """Home Assistant event entities: "Spoken digit" (event types 0-9) and "Spoken
        number" (event type "number", the number in its attributes)."""
        device = {"identifiers": [f"digitd_{self.device_id}"],
                  "name": f"digitd {self.device_id}", "manufacturer": "digitd",
                  "model": "offline spoken-digit recognizer", "sw_version": __version__}
        common = {"availability_topic": self.availability_topic,
                  "payload_available": "online", "payload_not_available": "offline",
                  "qos": self.settings.qos, "device": device}
        prefix = f"{self.settings.discovery_prefix}/event/{self.device_id}"
        return [
            (f"{prefix}/digit/config",
             {"name": "Spoken digit", "unique_id": f"digitd_{self.device_id}_digit",
              "state_topic": self.digit_topic, "event_types": [str(d) for d in range(10)],
              "icon": "mdi:numeric", **common}),
            (f"{prefix}/number/config",
             {"name": "Spoken number", "unique_id": f"digitd_{self.device_id}_number",
              "state_topic": self.number_topic, "event_types": ["number"],
              "icon": "mdi:dialpad", **common}),
        ]
