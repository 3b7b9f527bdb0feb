"""`digitd wyoming` against the wyoming package's own client over loopback: info, real
recordings at any format, ten clients at once, and clients that misbehave."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time

import numpy as np
import pytest
import soxr

from .daemon import CLI
from .mosquitto import free_port
from .streams import build_stream, clear_takes

pytest.importorskip("wyoming", reason="pip install 'digitd[wyoming]'")

from wyoming.asr import Transcribe, Transcript  # noqa: E402
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.event import Event  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("wyoming") / "server.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([*CLI, "wyoming", "--uri", f"tcp://127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
    proc.log = log
    yield proc, port
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def strings(recordings):
    """Three digit strings by three FSDD speakers, at 16 kHz."""
    plan = [[(4, "jackson"), (2, "theo"), (7, "lucas")],
            [(9, "nicolas"), (0, "george"), (5, "yweweler")],
            [(1, "lucas"), (8, "jackson"), (3, "theo"), (6, "nicolas")]]
    out = []
    for k, wanted in enumerate(plan):
        names = clear_takes(recordings, wanted)
        out.append(build_stream(recordings, names, [0.7] * len(names), rate=16000, seed=k))
    return out


def pcm(samples: np.ndarray, width: int = 2) -> bytes:
    return (np.clip(samples, -1, 1) * (2 ** (8 * width - 1) - 1)).astype(f"<i{width}").tobytes()


async def transcribe(port: int, audio: bytes, rate: int, width: int = 2, channels: int = 1,
                     chunk: int = 3200, before: list[Event] | None = None) -> str:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for event in before or []:
            await client.write_event(event)
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for i in range(0, len(audio), chunk):
            await client.write_event(AudioChunk(rate=rate, width=width, channels=channels,
                                                audio=audio[i : i + chunk]).event())
        await client.write_event(AudioStop().event())
        event = await asyncio.wait_for(client.read_event(), timeout=30)
        assert Transcript.is_type(event.type), event
        return Transcript.from_event(event).text


def test_describe_answers_info_with_the_model_and_its_attribution(server):
    async def ask():
        async with AsyncTcpClient("127.0.0.1", server[1]) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await asyncio.wait_for(client.read_event(), 10))

    info = asyncio.run(ask())
    (program,) = info.asr
    assert program.name == "digitd" and program.installed
    assert program.models[0].languages == ["en"]
    credit = program.models[0].attribution.name
    assert "Free Spoken Digit Dataset" in credit and "Speech Commands" in credit
    assert "speech_embedding" in credit


def test_real_recordings_at_16k_mono_and_44k_stereo(server, strings):
    stream = strings[0]
    assert asyncio.run(transcribe(server[1], pcm(stream.samples), 16000)) == "4 2 7"
    hi = soxr.resample(stream.samples, 16000, 44100)
    stereo = np.stack([hi, 0.8 * hi], axis=1).reshape(-1)
    text = asyncio.run(transcribe(server[1], pcm(stereo, width=4), 44100, width=4, channels=2))
    assert text == "4 2 7"


def test_ten_clients_at_once_each_get_their_own_transcript(server, strings):
    async def all_at_once():
        jobs = [transcribe(server[1], pcm(strings[k % 3].samples), 16000, chunk=1600 + 320 * k)
                for k in range(10)]
        return await asyncio.gather(*jobs)

    texts = asyncio.run(all_at_once())
    want = [" ".join(map(str, strings[k % 3].digits)) for k in range(10)]
    assert texts == want


def test_silence_gives_an_empty_transcript(server):
    quiet = np.random.default_rng(0).normal(0, 0.001, 16000 * 3)
    assert asyncio.run(transcribe(server[1], pcm(quiet), 16000)) == ""


def test_misbehaving_clients_are_logged_and_the_server_goes_on(server, strings):
    proc, port = server
    audio = pcm(strings[0].samples)

    async def misbehave():
        # chunks before audio-start and an unknown event: ignored, the transcript still right
        early = [AudioChunk(rate=16000, width=2, channels=1, audio=audio[:3200]).event(),
                 Event(type="no-such-event", data={"x": 1})]
        text = await transcribe(port, audio, 16000, before=early)
        # a client that goes away mid-stream
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b'{"type": "audio-start", "data": {"rate": 16000, "width": 2, '
                     b'"channels": 1}}\n{"type": "audio-chunk", "payload_length": 64000}\n')
        writer.write(audio[:1000])
        await writer.drain()
        writer.close()
        # garbage, and a header that claims a gigabyte
        for junk in (b"\x00\xffGET / HTTP/1.1\r\n\r\n", b'{"type": "audio-chunk", '
                     b'"payload_length": 1000000000}\n'):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(junk)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
            writer.close()
        return text

    assert asyncio.run(misbehave()) == "4 2 7"
    assert proc.poll() is None
    assert asyncio.run(transcribe(port, audio, 16000)) == "4 2 7"  # still serving
    log = proc.log.read_text()
    for said in ("audio-chunk before audio-start: ignored",
                 "unexpected event 'no-such-event': ignored", "went away mid-stream",
                 "not a Wyoming event", "more than a Wyoming client sends"):
        assert said in log, said
    assert "Traceback" not in log


def test_minutes_of_audio_keep_memory_bounded(server):
    proc, port = server
    rng = np.random.default_rng(1)
    room = pcm(rng.normal(0, 0.01, 16000 * 60))  # a minute of a noisy room, five times
    text = asyncio.run(transcribe(port, room * 5, 16000, chunk=64000))
    with open(f"/proc/{proc.pid}/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    assert text == ""
    assert peak < 200, f"server peak RSS {peak:.0f} MB after five minutes of audio"


def test_sigterm_with_a_client_connected_stops_cleanly(tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([*CLI, "wyoming", "--uri", f"tcp://127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=0.2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        client.sendall(b'{"type": "audio-start", "data": {"rate": 16000, "width": 2, '
                       b'"channels": 1}}\n')  # mid-transcription when the stop comes
        time.sleep(0.5)
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        client.close()
    finally:
        proc.kill()
    text = log.read_text()
    assert "stopping the Wyoming server (1 clients connected)" in text
    assert "Traceback" not in text
