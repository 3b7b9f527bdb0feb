"""The streaming pipeline on real audio: segmenter, splitting, stdin, EPIPE, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from digitd.daemon.features import FeatureConfig, trim_silence
from digitd.daemon.model import DigitClassifier
from digitd.daemon.pipeline import WORD_SECONDS, StreamRecognizer, split_on_dips
from digitd.daemon.segmenter import SegmenterSettings, VadSegmenter

from .streams import build_stream, write_stream

NAMES = ["3_theo_4.wav", "8_nicolas_20.wav", "0_jackson_33.wav", "5_lucas_12.wav",
         "1_george_40.wav", "9_yweweler_2.wav", "6_theo_9.wav"]
PAUSES = [0.6, 0.9, 0.4, 1.2, 0.7, 0.5, 0.8]
CLI = [sys.executable, "-m", "digitd.daemon.cli"]
RATE = 16000  # the model's rate


def segments_of(samples: np.ndarray, settings: SegmenterSettings | None = None,
                rate: int = 8000):
    seg = VadSegmenter(rate, settings)
    out = []
    n = seg.frame_samples
    for i in range(samples.size // n):
        s = seg.push(samples[i * n : (i + 1) * n])
        if s is not None:
            out.append(s)
    tail = seg.flush()
    return out + ([tail] if tail else [])


def test_segmenter_finds_each_digit_at_its_place(recordings):
    stream = build_stream(recordings, NAMES, PAUSES)
    segments = segments_of(stream.samples)
    assert len(segments) == len(NAMES)
    for segment, (start, end) in zip(segments, stream.spans, strict=True):
        # Each segment's audio covers its word (pre-roll before, hangover after; webrtcvad
        # may call a trailing fricative unvoiced, the hangover keeps it) and no other word.
        # Up to 0.1 s of a file's end may be left out: nicolas's files end in 0.2 s of his
        # room's noise, 17-20 dB under his voice, which the release rule counts as silence.
        assert segment.start <= start + 0.1 and segment.end >= end - 0.1
        assert segment.start > start - 0.45 and segment.end < end + 0.45
        assert not segment.truncated


def test_clicks_make_no_segment_and_breaths_no_digit():
    rng = np.random.default_rng(5)
    x = np.zeros(RATE * 4, np.float32)
    for start in (8000, 24000, 40000):
        x[start : start + 320] = rng.normal(size=320) * 0.5  # 20 ms clicks
    assert segments_of(x, rate=RATE) == []
    # A breath can be as long as a short digit for the VAD; the model's rejection handles it.
    x[52000:52800] = rng.normal(size=800) * 0.02  # a 50 ms breath
    recognizer = StreamRecognizer(DigitClassifier())
    events = recognizer.feed(x) + recognizer.finish()
    assert [e.digit for e in events if e.digit is not None] == []


def test_continuous_speech_is_flagged_too_long(recordings):
    from digitd.daemon.audio import read_audio

    # Talking without a pause: words overlapped by 150 ms, longer unbroken speech than
    # max_segment_ms (which an 8-digit number said fluently fits in).
    x = np.zeros(RATE * 16, np.float32)
    pos = 8000
    for name in NAMES * 4:
        wave = read_audio(recordings / name, RATE)
        wave = wave / np.max(np.abs(wave)) * 0.3
        x[pos : pos + wave.size] += wave
        pos += wave.size - 2400
    segments = segments_of(x[: pos + RATE], rate=RATE)
    assert segments and all(s.truncated for s in segments)
    assert sum(s.end - s.start for s in segments) > SegmenterSettings().max_segment_ms / 1000
    # However long the talking goes on, the segmenter's state stays bounded.
    seg = VadSegmenter(RATE)
    talk = np.tile(x[8000:pos], 8)  # ~35 s without a pause
    for i in range(talk.size // seg.frame_samples):
        seg.push(talk[i * seg.frame_samples : (i + 1) * seg.frame_samples])
    assert len(seg._frames) <= seg._max_frames and len(seg._energies) <= seg._max_frames


def test_two_digits_with_a_short_gap_are_split():
    cfg = FeatureConfig()
    from digitd.daemon.audio import read_audio

    from tests.conftest import FSDD

    a = read_audio(FSDD / "recordings" / "4_jackson_3.wav", RATE)
    b = read_audio(FSDD / "recordings" / "2_jackson_9.wav", RATE)
    joined = np.concatenate([a, np.zeros(960, np.float32), b])
    word = int(WORD_SECONDS * RATE)
    if joined.size <= word:  # make sure the join is longer than one word
        joined = np.concatenate([a, np.zeros(word - a.size - b.size + 1600), b])
    parts = split_on_dips(trim_silence(joined.astype(np.float64), cfg), cfg)
    assert parts is not None and len(parts) == 2
    hum = np.sin(2 * np.pi * 200 * np.arange(2 * RATE) / RATE) * 0.3  # 2 s, no gap at all
    assert split_on_dips(hum, cfg) is None


def test_stream_recognizer_on_a_real_stream(recordings):
    stream = build_stream(recordings, NAMES, PAUSES, rate=RATE)
    recognizer = StreamRecognizer(DigitClassifier())
    events = []
    for start in range(0, stream.samples.size, 333):  # odd block size on purpose
        events += recognizer.feed(stream.samples[start : start + 333])
    events += recognizer.finish()
    digits = [e.digit for e in events]
    assert len(digits) == len(NAMES)
    assert sum(d == t for d, t in zip(digits, stream.digits, strict=True)) >= len(NAMES) - 1
    for event, (_, end) in zip(events, stream.spans, strict=True):
        assert abs(event.end - end) < 0.3


def test_recognize_streams_a_file_with_pauses(tmp_path, recordings):
    stream = build_stream(recordings, NAMES, PAUSES, rate=44100)
    path = write_stream(stream, tmp_path / "digits.wav")
    result = subprocess.run([*CLI, "recognize", "--format", "jsonl", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(r["file"] == str(path) for r in rows)
    assert len(rows) == len(NAMES)
    assert sum(r["digit"] == t for r, t in zip(rows, stream.digits, strict=True)) >= 6
    assert {"digit", "confidence", "start", "end", "latency_ms", "time"} <= set(rows[0])


def test_bundled_sample_says_four_two_seven():
    from importlib import resources

    sample = resources.files("digitd.daemon").joinpath("samples/four-two-seven.wav")
    result = subprocess.run([*CLI, "recognize", str(sample)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "2", "7"]


def test_a_microphone_with_a_dc_offset_is_heard_as_one_without(recordings):
    """The same real stream, as is and on a -20 dBFS DC offset: the same digits, as sure."""
    stream = build_stream(recordings, NAMES, PAUSES, rate=RATE)
    classifier = DigitClassifier()

    def events(samples: np.ndarray) -> list:
        recognizer = StreamRecognizer(classifier)
        out = []
        for start in range(0, samples.size, 480):
            out += recognizer.feed(samples[start : start + 480])
        return out + recognizer.finish()

    plain, shifted = events(stream.samples), events(stream.samples + np.float32(0.1))
    assert [e.digit for e in shifted] == [e.digit for e in plain]
    assert sum(e.digit is not None for e in plain) >= len(NAMES) - 1
    for a, b in zip(plain, shifted, strict=True):
        assert abs(a.confidence - b.confidence) < 0.05 and abs(a.end - b.end) < 0.05


def test_stdin_pcm_source(recordings):
    stream = build_stream(recordings, NAMES, PAUSES, rate=16000)
    pcm = (np.clip(stream.samples, -1, 1) * 32767).astype("<i2").tobytes()
    result = subprocess.run([*CLI, "listen", "--input", "-", "--rate", "16000"], input=pcm,
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    digits = [int(line) for line in result.stdout.decode().split()]
    assert len(digits) == len(NAMES)
    assert sum(d == t for d, t in zip(digits, stream.digits, strict=True)) >= 6


def test_verbose_shows_rejections_and_default_hides_them(tmp_path):
    rng = np.random.default_rng(9)
    import soundfile as sf

    x = np.zeros(8000 * 3, np.float32)
    x[8000:16000] = rng.normal(size=8000) * 0.2  # a second of hiss: speech-like to a VAD
    sf.write(tmp_path / "hiss.wav", x, 8000)
    quiet = subprocess.run([*CLI, "recognize", str(tmp_path / "hiss.wav")], capture_output=True,
                           text=True, timeout=60)
    loud = subprocess.run([*CLI, "recognize", "--verbose", "--format", "jsonl",
                           str(tmp_path / "hiss.wav")], capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and quiet.stdout == ""
    rows = [json.loads(line) for line in loud.stdout.splitlines()]
    assert rows and all(r["digit"] is None for r in rows)


def test_closed_stdout_ends_quietly(recordings):
    stream = build_stream(recordings, NAMES, PAUSES)
    pcm = (stream.samples * 32767).astype("<i2").tobytes()
    proc = subprocess.Popen([*CLI, "listen", "--input", "-", "--rate", "8000"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first digit
    _, err = proc.communicate(pcm, timeout=120)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def test_sigterm_stops_within_a_second():
    proc = subprocess.Popen([*CLI, "listen", "--input", "-", "--rate", "8000"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdin.write(b"\x00\x00" * 8000)
    proc.stdin.flush()
    time.sleep(3)  # loaded and reading
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=5)
    assert time.monotonic() - sent < 1.0
    assert proc.returncode == 0
    assert b"SIGTERM" in proc.stderr.read()


@pytest.mark.parametrize("bad", [["--vad-aggressiveness", "5"], ["--frame-ms", "25"],
                                 ["--trigger-ratio", "1.5"], ["--hangover-ms", "5"],
                                 ["--rate", "0"]])
def test_bad_segmenter_settings_are_clear_errors(bad):
    result = subprocess.run([*CLI, "listen", "--input", "-", *bad], input="",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "digitd" in result.stderr and "Traceback" not in result.stderr


def talkers(pick, n: int, seed: int, spread: int) -> np.ndarray:
    """Eight voices at once: each `pick(rng)` looped, started up to `spread` samples in."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n)
    for _ in range(8):
        voice = pick(rng)
        looped = np.tile(voice, (n + spread) // voice.size + 2)
        offset = int(rng.integers(spread))
        out += looped[offset : offset + n]
    return out / np.std(out)


def babble(recordings, n: int, seed: int) -> np.ndarray:
    """Eight overlapping talkers (FSDD, reversed so that no digit can be heard)."""
    from digitd.daemon.audio import read_audio

    files = sorted(recordings.glob("*_jackson_*.wav")) + sorted(recordings.glob("*_lucas_*.wav"))
    return talkers(lambda rng: read_audio(files[rng.integers(len(files))], 8000)[::-1], n, seed,
                   spread=2000)


def cleanly_segmented(segments, spans) -> int:
    """Words covered by a segment that touches no other word."""
    count = 0
    for start, end in spans:
        for seg in segments:
            others = [(a, b) for a, b in spans if (a, b) != (start, end)
                      and a < seg.end and b > seg.start]
            if seg.start <= start + 0.1 and seg.end >= end - 0.1 and not others:
                count += 1
                break
    return count


def test_noise_rules_keep_words_apart_in_babble(recordings):
    stream = build_stream(recordings, NAMES, PAUSES, noise=0.0)
    spans = [(int(a * 8000), int(b * 8000)) for a, b in stream.spans]
    speech_power = np.mean(np.concatenate([stream.samples[a:b] for a, b in spans]) ** 2)
    gated = plain = 0
    for seed in range(6):
        noisy = (stream.samples + babble(recordings, stream.samples.size, seed)
                 * np.sqrt(speech_power / 10 ** (20 / 10))).astype(np.float32)  # 20 dB SNR
        gated += cleanly_segmented(segments_of(noisy), stream.spans)
        # webrtcvad alone calls much of the babble speech, and words run together
        alone = SegmenterSettings(floor_margin_db=0.0, release_db=90.0)
        plain += cleanly_segmented(segments_of(noisy, alone), stream.spans)
    words = 6 * len(NAMES)
    assert gated >= 0.8 * words, (gated, plain)
    assert gated >= plain + 0.15 * words, (gated, plain)


def end_delays(segments, spans) -> list[float]:
    """For each word, how long after its end the segment holding its middle closed."""
    return [next((s.end - end for s in segments if s.start <= (start + end) / 2 <= s.end),
                 np.inf) for start, end in spans]


def test_words_end_on_time_while_the_room_keeps_talking(recordings):
    # Babble 20 dB under the words stays "speech" to webrtcvad after each word; counting
    # frames release_db (17) under the segment's loudest as silence closes it at the word.
    stream = build_stream(recordings, NAMES, PAUSES, noise=0.0)
    speech_power = np.mean(np.concatenate(
        [stream.samples[int(a * 8000) : int(b * 8000)] for a, b in stream.spans]) ** 2)
    released, held = [], []
    for seed in range(4):
        noisy = (stream.samples + babble(recordings, stream.samples.size, seed)
                 * np.sqrt(speech_power / 10 ** (20 / 10))).astype(np.float32)
        released += end_delays(segments_of(noisy), stream.spans)
        held += end_delays(segments_of(noisy, SegmenterSettings(release_db=90.0)), stream.spans)
    # FSDD files end in some silence: a segment may close a little before the file does.
    on_time, late = np.percentile(released, 75), np.percentile(held, 75)
    assert on_time <= 0.2, np.round(sorted(released), 2)
    assert late > on_time + 0.1, (late, on_time)


PHRASES = ["turn on the kitchen light", "what time is it", "good morning everybody",
           "the weather is nice today", "open the garage door please", "call my brother"]


def spoken_phrases() -> list[np.ndarray]:
    """Six phrases in six synthetic voices (espeak-ng, installed by
    scripts/install-system-packages): talk that goes on without the pauses FSDD has."""
    import shutil

    from digitd.train import synth

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    voices = [synth.Voice("espeak", name, 1.0, pitch) for name, pitch in (
        ("en-us+f2", 70), ("en-gb+m3", 40), ("en-us+f4", 60), ("en-gb-scotland+m1", 35),
        ("en-029+f1", 65), ("en-us+m7", 45))]
    return [w for _, _, w in synth.synthesize(voices, PHRASES, 8000)]


def tv_chatter(n: int, seed: int) -> np.ndarray:
    """Eight synthetic voices talking at once, played backwards."""
    talk = [w[::-1] for w in spoken_phrases()]
    return talkers(lambda rng: talk[rng.integers(len(talk))], n, seed, spread=4000)


def test_a_word_that_starts_while_the_room_talks_gets_its_own_segment(recordings):
    # Chatter 20 dB under the words opens segments of its own; when a word 20 dB louder
    # starts inside one, the segment restarts there (with its pre-roll) instead of handing
    # the model a second of chatter before the word.
    stream = build_stream(recordings, NAMES, PAUSES, noise=0.0)
    speech_power = np.mean(np.concatenate(
        [stream.samples[int(a * 8000) : int(b * 8000)] for a, b in stream.spans]) ** 2)

    def leads(segments) -> list[float]:  # how long before each word its segment starts
        return [next((start - s.start for s in segments if s.start <= (start + end) / 2 <= s.end),
                     np.inf) for start, end in stream.spans]

    restarted, held = [], []
    for seed in range(4):
        noisy = (stream.samples + tv_chatter(stream.samples.size, seed)
                 * np.sqrt(speech_power / 10 ** (20 / 10))).astype(np.float32)
        restarted += leads(segments_of(noisy))
        held += leads(segments_of(noisy, SegmenterSettings(onset_db=0.0)))
    late = [sum(1 for lead in found if 0.8 < lead < np.inf) for found in (restarted, held)]
    assert late[0] == 0 and late[1] >= 3, (late, np.round(sorted(held), 2))


def test_a_phrase_is_not_cut_into_digit_sized_pieces():
    # Talking is not digits: a phrase should stay one (too long, rejected) segment. The
    # release rule must not cut it at every short dip between its words, so its quiet has
    # to last release_ms (170), longer than the 100 ms hangover of webrtcvad's silence.
    rng = np.random.default_rng(0)

    def pieces(settings: SegmenterSettings | None) -> int:
        count = 0
        for phrase in spoken_phrases():
            x = np.concatenate([np.zeros(8000), phrase / np.max(np.abs(phrase)) * 0.5,
                                np.zeros(8000)])
            x += rng.normal(size=x.size) * 1e-3
            count += sum(1 for s in segments_of(x.astype(np.float32), settings)
                         if not s.truncated)
        return count

    held, hasty = pieces(None), pieces(SegmenterSettings(release_ms=100))
    phrases = len(spoken_phrases())
    assert held <= 1.5 * phrases and hasty >= held + 10, (held, hasty, phrases)



def test_a_quiet_room_costs_no_embedding():
    classifier = DigitClassifier()
    recognizer = StreamRecognizer(classifier)
    calls = []
    real = classifier.embeddings
    classifier.embeddings = lambda mel: calls.append(1) or real(mel)
    rng = np.random.default_rng(2)
    for _ in range(50):  # 20 s of a quiet room
        assert recognizer.feed((rng.normal(size=RATE * 2 // 5) * 1e-3).astype(np.float32)) == []
    assert calls == []


def test_a_word_in_a_stream_is_heard_as_the_file_of_it(recordings):
    # One pass at the word's end over the same window `recognize --whole` builds: the words
    # before it are not in it, and the stream's answer is the file's.
    from digitd.daemon.audio import read_audio

    classifier = DigitClassifier()
    stream = build_stream(recordings, NAMES[:3], [0.4, 0.4, 0.8], rate=RATE)
    recognizer = StreamRecognizer(classifier)
    events = recognizer.feed(stream.samples) + recognizer.finish()
    for event, name in zip(events, NAMES[:3], strict=True):
        alone = classifier.classify_utterance(read_audio(recordings / name, RATE))
        assert event.digit == alone.digit == int(name[0])
