"""Digit strings: numbers said by voices no training heard, through `--numbers`.

Each string of 3-6 digits is its own short stream: noise, the words with a fixed gap between
them (0, 50, 150 or 500 ms; "fluent": a TTS voice says the whole string at once, zero
sometimes as "oh"), noise. The
voices: Speech Commands speakers the strings stage never trained on (train.strings.held_out;
a few digits each, so a string mixes several of them), the benchmark's unseen TTS voices,
and Allison Smith's recorded digits. Scored per string: the whole number right (exactly one
number line, equal to what was said), digit error rate (edit distance over all the digits
that came out), and latency from the end of the last word to the number line.

Recognizers on the same audio: digitd with the strings stage, digitd without it (one digit
per word, grouped into a number by the same pause rule), and pocketsphinx with a JSGF
grammar of digit strings (the digits of its utterances in one string make the number).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from digitd.train.synth import DIGIT_WORDS

from bench import material
from bench.material import RATE
from bench.scoring import edit_distance

GAPS = ("fluent", 0.0, 0.05, 0.15, 0.5)
NUMBER_GAP_S = 1.0  # the daemon's --number-gap-ms default


@dataclass(frozen=True)
class SpokenString:
    source: str
    gap: str  # "fluent" or milliseconds
    snr: int
    digits: tuple[int, ...]
    samples: np.ndarray
    end: float  # stream seconds where the last word ends


def held_out_sc_digits(root=None) -> list[tuple[int, np.ndarray]]:
    """The digits of Speech Commands speakers the strings stage never trained on."""
    from digitd.train.data import default_speech_commands_dir, load_speech_commands
    from digitd.train.strings import held_out

    sc = load_speech_commands(root or default_speech_commands_dir(), RATE)
    return [(DIGIT_WORDS.index(w), wave) for w, s, wave in zip(sc.words, sc.speakers, sc.waves,
                                                              strict=True)
            if w in DIGIT_WORDS and held_out(f"sc:{s}")]


def trimmed(wave: np.ndarray) -> np.ndarray:
    """The word alone: from 30 dB under its loudest 10 ms to the same at its end, so a
    string's gaps are the gaps named (Speech Commands' one-second clips keep their room
    noise under a looser trim, and a 500 ms gap would become a second)."""
    from digitd.daemon.features import speech_bounds

    x = np.asarray(wave, dtype=np.float64)
    start, stop = speech_bounds(x, RATE // 100, 30.0, margin_frames=2)
    return x[start:stop]


def in_noise(speech: np.ndarray, snr_db: float, rng: np.random.Generator
             ) -> tuple[np.ndarray, float]:
    """0.8 s of noise, the speech, 1.6 s of noise (past the number gap); the speech at
    snr_db over pink noise (babble is the streaming section's: there the segmenter, not the
    reading of strings, is what it tests). Returns the samples and where the speech ends."""
    lead, tail = int(0.8 * RATE), int(1.6 * RATE)
    speech = speech / np.sqrt(material.active_power(speech) + 1e-20)
    x = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    noisy = x + material.noise("pink", x.size, rng, []) / np.sqrt(10 ** (snr_db / 10))
    return ((0.3 * noisy / np.max(np.abs(noisy))).astype(np.float32),
            (lead + speech.size) / RATE)


def joined(clips: list[tuple[int, np.ndarray]], digits: list[int], gap_s: float,
           rng: np.random.Generator) -> np.ndarray:
    """Each digit by a random clip of it, trimmed and levelled, gap_s seconds apart."""
    by_digit = {d: [w for e, w in clips if e == d] for d in range(10)}
    parts = []
    for d in digits:
        word = trimmed(by_digit[d][int(rng.integers(len(by_digit[d])))])
        parts += [word / np.sqrt(material.active_power(word) + 1e-20), np.zeros(int(gap_s *
                                                                                  RATE))]
    return np.concatenate(parts[:-1])


SC, UNSEEN, ALLISON = ("Speech Commands, held-out speakers", "unseen TTS voices",
                       "Allison (recorded)")


def digit_sources(voices: int | None, cache) -> dict[str, list[tuple[int, np.ndarray]]]:
    """(digit, clip) of each source of voices the strings stage never heard."""
    unseen = material.synthesized(material.unseen_voices(voices), list(DIGIT_WORDS), cache)
    return {SC: held_out_sc_digits(), UNSEEN: [(DIGIT_WORDS.index(t), w) for t, w in unseen],
            ALLISON: material.allison()[0]}


def spoken_strings(sources: dict[str, list[tuple[int, np.ndarray]]], per_cell: int,
                   snrs: tuple[int, ...], voices: int | None, cache) -> list[SpokenString]:
    """Every source x gap x SNR cell, `per_cell` strings of 3-6 digits each."""
    rng = np.random.default_rng(30)
    unseen = material.unseen_voices(voices)
    out = []
    for source, clips in sources.items():
        present = {d for d, _ in clips}
        if present != set(range(10)):
            continue
        for gap in GAPS:
            if gap == "fluent" and source != UNSEEN:
                continue
            for snr in snrs:
                for _ in range(per_cell):
                    digits = [int(d) for d in rng.integers(0, 10, size=int(rng.integers(3, 7)))]
                    if gap == "fluent":
                        voice = unseen[int(rng.integers(len(unseen)))]
                        text = " ".join("oh" if d == 0 and rng.random() < 0.3 else
                                        DIGIT_WORDS[d] for d in digits)
                        speech = trimmed(material.synthesized([voice], [text], cache)[0][1])
                    else:
                        speech = joined(clips, digits, float(gap), rng)
                    samples, end = in_noise(speech, snr, rng)
                    label = gap if gap == "fluent" else f"{int(float(gap) * 1000)} ms"
                    out.append(SpokenString(source, label, snr, tuple(digits), samples, end))
    return out


def digitd_numbers(recognizer, samples: np.ndarray) -> list[tuple[str | None, float]]:
    """(number or None if rejected, stream time it came out) through the daemon's stream
    recognizer and number grouper, in microphone-sized blocks."""
    from digitd.daemon.numbers import NumberGrouper
    from digitd.daemon.pipeline import StreamRecognizer

    stream = StreamRecognizer(recognizer.classifier, recognizer.segmenter)
    numbers = NumberGrouper(NUMBER_GAP_S)
    clock = stream.segmenter
    block = recognizer.rate * recognizer.block_ms // 1000
    out = []
    for start in range(0, samples.size, block):
        t0 = time.perf_counter()
        events = numbers.feed(stream.feed(samples[start : start + block]), clock.seconds,
                              clock.triggered)
        now = min(samples.size, start + block) / recognizer.rate + time.perf_counter() - t0
        out += [(e.number, now) for e in events]
    events = numbers.feed(stream.finish(), clock.seconds) + numbers.finish(clock.seconds)
    return out + [(e.number, samples.size / recognizer.rate) for e in events]


def peer_numbers(peer, samples: np.ndarray) -> list[tuple[str | None, float]]:
    """pocketsphinx's digits of the stream as one number, out when its last one came."""
    emitted = peer.stream(samples)
    if not emitted:
        return []
    return [("".join(str(e.digit) for e in emitted), max(e.emitted for e in emitted))]


def score(strings: list[SpokenString], outputs: list[list[tuple[str | None, float]]]) -> dict:
    right, errors, said, latencies = 0, 0, 0, []
    for s, out in zip(strings, outputs, strict=True):
        numbers = [n for n, _ in out if n is not None]
        truth = "".join(map(str, s.digits))
        if numbers == [truth]:
            right += 1
            latencies.append(1000 * (max(t for n, t in out if n is not None) - s.end))
        errors += edit_distance(list(truth), list("".join(numbers)))
        said += len(truth)
    return {"n": len(strings), "strings_right": right / max(1, len(strings)),
            "digit_error_rate": errors / max(1, said),
            "latency_p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
            "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies else None}


def without_strings_harm(recognizers: dict, sources: dict, digits: int, talk_seconds: float,
                         voices: int | None, cache) -> dict:
    """What the strings stage must not spoil: single digits with pauses (the unseen voices'
    and the held-out Speech Commands speakers' digits, 20 dB pink noise) and talk with no
    digit in it, through digitd with and without the stage."""
    from bench.scoring import StreamScore, score_stream

    clips = sources[UNSEEN] + sources[SC]
    speech = material.unseen_speech(voices, cache)
    streams = [material.digit_stream(f"isolated-{k}", [w for _, w in clips],
                                     [d for d, _ in clips], digits, 20, "pink", speech,
                                     seed=70 + k, level_spread_db=3.0) for k in range(4)]
    talk = material.non_digit_stream("speech", talk_seconds, speech, seed=71)
    out: dict = {"digits": 4 * digits, "talk_seconds": talk_seconds}
    for name, recognizer in recognizers.items():
        total = StreamScore(latencies_ms=[])
        for stream in streams:
            total.add(score_stream(stream.truth, recognizer.stream(stream.samples)))
        out[name] = {**total.summary(),
                     "talk_digits_per_hour": len(recognizer.stream(talk)) / talk_seconds
                     * 3600}
    return out


def run(per_cell: int, snrs: tuple[int, ...], voices: int | None, cache, peer,
        isolated_digits: int = 40, talk_seconds: float = 300.0) -> dict:
    """Every recognizer on every string: scores per source, gap and SNR, and overall."""
    from bench.recognizers import Digitd

    sources = digit_sources(voices, cache)
    strings = spoken_strings(sources, per_cell, snrs, voices, cache)
    recognizers = {"digitd": Digitd(), "digitd, one digit per word": Digitd(strings=False)}
    out: dict = {"per_cell": per_cell, "snrs": list(snrs), "gaps": [str(g) for g in GAPS],
                 "cpu_share": {},  # CPU seconds per second of the strings' audio
                 "harm": without_strings_harm(recognizers, sources, isolated_digits,
                                              talk_seconds, voices, cache)}
    seconds = sum(s.samples.size for s in strings) / RATE
    for name, recognizer in (*recognizers.items(), *((("pocketsphinx", peer),) if peer
                                                       else ())):
        t0 = time.process_time()
        outputs = [digitd_numbers(recognizer, s.samples) if name.startswith("digitd")
                   else peer_numbers(recognizer, s.samples) for s in strings]
        out["cpu_share"][name] = (time.process_time() - t0) / seconds
        cells: dict = {}
        for key in dict.fromkeys((s.source, s.gap, s.snr) for s in strings):
            pick = [i for i, s in enumerate(strings) if (s.source, s.gap, s.snr) == key]
            cells[" | ".join(map(str, key))] = score([strings[i] for i in pick],
                                                     [outputs[i] for i in pick])
        near = [i for i, s in enumerate(strings) if s.gap in ("fluent", "0 ms", "50 ms",
                                                              "150 ms")]
        out[name] = {"cells": cells, "all": score(strings, outputs),
                     "gaps 0-150 ms": score([strings[i] for i in near],
                                            [outputs[i] for i in near])}
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.strings`: this section alone, larger than the whole benchmark runs
    it, its results as JSON on stdout (`--no-peer` leaves pocketsphinx out)."""
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m bench.strings", description=__doc__)
    parser.add_argument("--per-cell", type=int, default=12)
    parser.add_argument("--snrs", type=int, nargs="+", default=[20, 10])
    parser.add_argument("--voices", type=int, default=None, help="unseen TTS voices (all 64)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "digitd" / "synth")
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args(argv)
    from digitd.daemon.heap import keep_freed_memory

    from bench.recognizers import Pocketsphinx

    keep_freed_memory()  # as `digitd` does: the CPU figures are the daemon's

    peer = None if args.no_peer else Pocketsphinx()
    print(json.dumps(run(args.per_cell, tuple(args.snrs), args.voices, args.cache, peer),
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
