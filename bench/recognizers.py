"""The recognizers under test, behind one interface: a whole utterance -> digit or None, and
a long stream -> digits with their times. Both take 16 kHz float audio (bench.material.RATE).

digitd runs its real runtime path (shared features, int8 LiteRT stages, webrtcvad segmenter).
pocketsphinx (PyPI, with its bundled en-us model) gets the same 16 kHz audio, a JSGF grammar
of the ten digit words ("oh" counts as zero), and its own
Endpointer for streams, as its live-audio example does.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from digitd.train.synth import DIGIT_WORDS

from bench.scoring import Emitted, Heard

WORDS = DIGIT_WORDS
ONE_DIGIT = ("#JSGF V1.0;\ngrammar digit;\npublic <digit> = "
             + " | ".join((*WORDS, "oh")) + ";\n")
DIGITS = ("#JSGF V1.0;\ngrammar digits;\n<digit> = " + " | ".join((*WORDS, "oh"))
          + ";\npublic <digits> = <digit>+;\n")


class Digitd:
    name = "digitd"

    def __init__(self, model: Path | None = None, segmenter=None,
                 block_ms: int | None = None, strings: bool = True) -> None:
        """`segmenter` (SegmenterSettings) and `block_ms`: the daemon's defaults if None.
        `strings` False leaves the model's strings stage out: one digit per word."""
        from digitd.daemon.config import BY_KEY
        from digitd.daemon.model import DigitClassifier

        self.classifier = DigitClassifier(model)
        if not strings:
            self.classifier.strings = None
        self.rate = self.classifier.features.sample_rate
        self.segmenter = segmenter
        self.block_ms = block_ms or BY_KEY["audio.block_ms"].default

    def isolated(self, wave: np.ndarray) -> int | None:
        return self.classifier.classify_utterance(wave).digit

    def stream(self, samples: np.ndarray) -> list[Emitted]:
        return self.stream_heard(samples)[0]

    def stream_heard(self, samples: np.ndarray) -> tuple[list[Emitted], list[Heard]]:
        """The digits emitted, and every segment decided on (rejected ones too). Fed in
        microphone-sized blocks: a digit can only come out once the block holding the word's
        end has arrived."""
        from digitd.daemon.pipeline import StreamRecognizer

        recognizer = StreamRecognizer(self.classifier, self.segmenter)
        block = self.rate * self.block_ms // 1000
        emitted: list[Emitted] = []
        heard: list[Heard] = []

        def take(events: list, now: float) -> None:
            emitted.extend(Emitted(e.digit, e.end, now) for e in events if e.digit is not None)
            heard.extend(Heard(e.start, e.end, e.digit, e.reason) for e in events)

        for start in range(0, samples.size, block):
            t0 = time.perf_counter()
            events = recognizer.feed(samples[start : start + block])
            take(events, min(samples.size, start + block) / self.rate + time.perf_counter() - t0)
        take(recognizer.finish(), samples.size / self.rate)
        return emitted, heard


def _digits(hypstr: str) -> list[int]:
    return [0 if w == "oh" else WORDS.index(w) for w in hypstr.split() if w in (*WORDS, "oh")]


class Pocketsphinx:
    name = "pocketsphinx"

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.rate = 16000
        self.decoder = Decoder(samprate=self.rate, loglevel="FATAL")
        self.decoder.add_jsgf_string("one", ONE_DIGIT)
        self.decoder.add_jsgf_string("many", DIGITS)

    def _pcm(self, wave: np.ndarray) -> bytes:
        from digitd.daemon.audio import resample

        from bench.material import RATE

        samples = resample(wave.astype(np.float32), RATE, self.rate)
        return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()

    def isolated(self, wave: np.ndarray) -> int | None:
        self.decoder.activate_search("one")
        self.decoder.start_utt()
        self.decoder.process_raw(self._pcm(wave), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        digits = _digits(hyp.hypstr) if hyp is not None else []
        return digits[0] if digits else None

    def stream(self, samples: np.ndarray) -> list[Emitted]:
        from pocketsphinx import Endpointer

        self.decoder.activate_search("many")
        endpointer = Endpointer(sample_rate=self.rate)
        pcm = self._pcm(samples)
        size = endpointer.frame_bytes
        out: list[Emitted] = []
        in_utterance, utterance_start = False, 0.0
        for start in range(0, len(pcm), size):
            frame = pcm[start : start + size]
            last = len(frame) < size or start + size >= len(pcm)
            t0 = time.perf_counter()
            speech = endpointer.end_stream(frame) if last else endpointer.process(frame)
            if speech:
                if not in_utterance:
                    self.decoder.start_utt()
                    in_utterance, utterance_start = True, endpointer.speech_start
                self.decoder.process_raw(speech)
            if in_utterance and (last or not endpointer.in_speech):
                self.decoder.end_utt()
                in_utterance = False
                now = (start + len(frame)) / 2 / self.rate + time.perf_counter() - t0
                out += self._words(utterance_start, now)
        return out

    def _words(self, utterance_start: float, now: float) -> list[Emitted]:
        words = []
        # frames of 10 ms from the utterance start; None when it heard nothing at all
        for seg in self.decoder.seg() or []:
            digits = _digits(seg.word.split("(")[0])
            if digits:
                words.append(Emitted(digits[0], utterance_start + seg.end_frame / 100.0, now))
        return words


def main() -> int:
    """`python -m bench.recognizers NAME` streams s16le 16 kHz PCM from stdin through one
    recognizer and prints its digits: the same harness for both, to measure their footprint.
    'READY' goes to stderr once the recognizer is constructed."""
    import sys

    name = sys.argv[1]
    recognizer = Digitd() if name == "digitd" else Pocketsphinx()
    print("READY", file=sys.stderr, flush=True)
    pcm = np.frombuffer(sys.stdin.buffer.read(), dtype="<i2").astype(np.float32) / 32768.0
    print(" ".join(str(e.digit) for e in recognizer.stream(pcm)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
