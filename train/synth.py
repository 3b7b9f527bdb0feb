"""Extra voices made on this machine with local TTS engines, at train time.

FSDD has six adult men. Local engines add women's and other accents' voices for the digits,
and, more importantly, say the non-digit words the model must learn to reject. Engines:
espeak-ng (many accents and voice variants), flite, festival (Debian packages) and hibari
(a neural voice shipped inside its PyPI wheel). Nothing is downloaded. An engine that is not
installed is skipped with a warning. Results are cached on disk, keyed by the request.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from digitd.daemon.audio import resample, to_mono

log = logging.getLogger(__name__)

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Words that are not digits. Homophones of digits (for, to, too, won, ate) are left out: a
# user saying them should get the digit. Near neighbours (tree, eleven, forty) stay in, so the
# model learns that almost-a-digit is not a digit.
NON_DIGIT_WORDS = (
    "yes no up down left right on off stop go bed bird cat dog happy house tree wow "
    "backward forward follow learn visual hello okay light door open close lamp music play "
    "pause next back home kitchen water coffee morning night today tomorrow please thanks "
    "sorry help cancel enter delete clear again repeat volume louder alarm timer weather "
    "phone call message garden window table chair apple orange banana yellow green blue red "
    "black white purple number letter alpha bravo charlie delta echo hotel kilo lima oscar "
    "romeo sierra tango victor yankee hundred thousand twenty forty eleven twelve dozen first "
    "second third computer system start finish maybe never always little big small sad "
    "mister sister river seventy sixty heaven fine line wine tire hive sticks fix wait "
    "thirteen teen zebra hero nothing something person brother mother father good bad "
    "evening quiet listen hey what where when why who how"
).split()

# Words that sound like a digit, said by many voices: the hardest part of "not a digit".
# Rhymes and near neighbours of each digit, and the teens and tens. A digit's exact
# homophones (for, to, too, won, ate, nein) are not here: a user saying them gets the digit.
HARD_NEGATIVES = (
    "hero zebra arrow nero "  # zero
    "fun sun gun done none run ton "  # one
    "shoe blue true do who new you "  # two
    "tree free tea sea me we flee fee "  # three
    "door more floor your pour core "  # four
    "hive dive drive alive fife fine "  # five
    "sticks fix mix kicks tricks sex sax "  # six
    "heaven kevin seventh "  # seven
    "gate late wait plate date weight "  # eight
    "line wine mine pine sign dine "  # nine
    "eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen "
    "twenty thirty forty fifty sixty seventy eighty ninety hundred"
).split()

# The benchmark's (bench/) words and phrases: it scores the words NON_DIGIT_WORDS lacks and
# every phrase as speech no training heard, so nothing drawn for training may hold them.
BENCHMARK_WORDS = ("banana", "pencil", "window", "garage", "doctor", "yellow", "basket",
                   "silver", "music", "paper", "monkey", "ticket", "planet", "rocket", "button",
                   "coffee")
BENCHMARK_PHRASES = ("turn on the kitchen light", "what time is it",
                     "open the garage door please", "play some music",
                     "good morning everybody", "where are my keys", "the weather is nice today",
                     "call my brother tomorrow")

def assign_voices(words: list[str], voices: list[Voice], per_word: int, seed: int
                  ) -> dict[Voice, list[str]]:
    """Each word to `per_word` distinct voices drawn at random (seeded): voice -> its words."""
    rng = np.random.default_rng([seed, 32])
    out: dict[Voice, list[str]] = {}
    for word in words:
        for i in rng.choice(len(voices), size=min(per_word, len(voices)), replace=False):
            out.setdefault(voices[i], []).append(word)
    return out


@dataclass(frozen=True)
class Voice:
    engine: str  # espeak, flite, festival, hibari
    name: str  # engine-specific voice id
    speed: float = 1.0  # >1 faster
    pitch: int = 50  # espeak only, 0-99

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.name}:{self.speed:.2f}:{self.pitch}"


def default_voices(rng_seed: int = 0) -> list[Voice]:
    """A spread of accents, sexes, pitches and rates across every local engine."""
    rng = np.random.default_rng(rng_seed)
    voices = []
    accents = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
               "en-gb-x-gbcwmd", "en-029"]
    variants = ["", "+f1", "+f2", "+f3", "+f4", "+f5", "+m1", "+m3", "+m5", "+m7",
                "+Annie", "+belinda", "+linda", "+aunty", "+edward", "+klatt4"]
    for accent in accents:
        for variant in variants:
            if rng.random() < 0.55:
                female = variant.startswith("+f") or variant in ("+Annie", "+belinda",
                                                                 "+linda", "+aunty")
                pitch = int(rng.integers(45, 90) if female else rng.integers(20, 70))
                voices.append(Voice("espeak", accent + variant, float(rng.uniform(0.8, 1.2)),
                                    pitch))
    for name in ("kal", "kal16", "awb", "rms", "slt"):
        for speed in (0.85, 1.0, 1.2):
            voices.append(Voice("flite", name, speed))
    for name in ("voice_cmu_us_slt_arctic_hts", "voice_kal_diphone", "voice_ked_diphone"):
        for speed in (0.9, 1.15):
            voices.append(Voice("festival", name, speed))
    for speed in (0.8, 0.9, 1.0, 1.1, 1.25):
        voices.append(Voice("hibari", "heart", speed))
    return voices


# For calibrating the rejection rule on voices unlike FSDD's six men: espeak-ng variants that
# neither training (default_voices) nor the benchmark's unseen voices use, half of them
# pitched up towards women's and children's voices.
CALIBRATION_VARIANTS = ("+steph2", "+steph3", "+m2", "+m4", "+m6", "+m8", "+adam", "+caleb",
                        "+david", "+ed", "+Gene", "+Lee", "+Michael", "+paul", "+pedro",
                        "+quincy")
CALIBRATION_ACCENTS = ("en-us", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")


def calibration_voices(rng_seed: int = 0) -> list[Voice]:
    rng = np.random.default_rng([rng_seed, 77])
    voices = []
    for accent in CALIBRATION_ACCENTS:
        for i, variant in enumerate(CALIBRATION_VARIANTS):
            pitch = int(rng.integers(55, 90) if i % 2 == 0 else rng.integers(20, 60))
            voices.append(Voice("espeak", accent + variant, float(rng.uniform(0.85, 1.15)),
                                pitch))
    return voices


def _decode(wav_bytes: bytes, rate: int) -> np.ndarray:
    samples, file_rate = sf.read(io.BytesIO(wav_bytes), dtype="float32")
    return resample(to_mono(samples), int(file_rate), rate)


def _espeak(voice: Voice, text: str, rate: int) -> np.ndarray:
    words_per_minute = str(int(160 * voice.speed))
    wav = subprocess.run(
        ["espeak-ng", "-v", voice.name, "-s", words_per_minute, "-p", str(voice.pitch),
         "--stdout", text],
        check=True, capture_output=True, timeout=30,
    ).stdout
    return _decode(wav, rate)


def _flite(voice: Voice, text: str, rate: int) -> np.ndarray:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(
            ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / voice.speed:.3f}",
             "-t", text, "-o", tmp.name],
            check=True, capture_output=True, timeout=30,
        )
        return _decode(Path(tmp.name).read_bytes(), rate)


def _festival_batch(voice: Voice, texts: list[str], rate: int) -> list[np.ndarray]:
    """One festival process per voice: it takes a second to start."""
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"({voice.name})",
                 f"(Parameter.set 'Duration_Stretch {1 / voice.speed:.3f})"]
        for i, text in enumerate(texts):
            lines.append(f'(utt.save.wave (SynthText "{text}") "{tmp}/{i}.wav")')
        script = Path(tmp) / "run.scm"
        script.write_text("\n".join(lines) + "\n")
        subprocess.run(["festival", "-b", str(script)], check=True, capture_output=True,
                       timeout=600)
        return [_decode((Path(tmp) / f"{i}.wav").read_bytes(), rate) for i in range(len(texts))]


def engine_available(engine: str) -> bool:
    if engine == "hibari":
        try:
            import hibari  # noqa: F401
        except ImportError:
            return False
        return True
    command = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival"}[engine]
    return shutil.which(command) is not None


def synthesize(
    voices: list[Voice], texts: list[str], rate: int, cache_dir: Path | None = None
) -> list[tuple[str, str, np.ndarray]]:
    """Every text in every available voice -> [(voice key, text, waveform)]."""
    request = json.dumps([rate, [v.key for v in voices], list(texts)])
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"synth-{hashlib.sha256(request.encode()).hexdigest()[:16]}.npz"
        if cache.is_file():
            return _load(cache)
    available = {e: engine_available(e) for e in {v.engine for v in voices}}
    for engine, ok in available.items():
        if not ok:
            log.warning("TTS engine %s not installed; its voices are skipped", engine)
    usable = [v for v in voices if available[v.engine]]
    results = [r for r in _speak(usable, texts, rate)
               if r[2].size > 0 and np.max(np.abs(r[2])) > 1e-4]
    if cache is not None and results:
        _save(cache, results)
    return results


def _speak(voices: list[Voice], texts: list[str], rate: int
           ) -> list[tuple[str, str, np.ndarray]]:
    """The engines at work: two processes at a time; Hibari in this process meanwhile."""
    results: list[tuple[str, str, np.ndarray]] = []
    jobs = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for voice in voices:
            if voice.engine == "festival":
                jobs.append((voice, texts, pool.submit(_festival_batch, voice, texts, rate)))
            elif voice.engine in ("espeak", "flite"):
                fn = _espeak if voice.engine == "espeak" else _flite
                for text in texts:
                    jobs.append((voice, [text], pool.submit(lambda f=fn, v=voice, t=text:
                                                            [f(v, t, rate)])))
        hibari_voices = [v for v in voices if v.engine == "hibari"]
        if hibari_voices:
            from hibari import Hibari

            tts = Hibari(threads=1)
            for voice in hibari_voices:
                for i, text in enumerate(texts):
                    audio = tts(text, seed=i, speed=voice.speed)
                    results.append((voice.key, text, resample(audio, 24000, rate)))
        for voice, job_texts, future in jobs:
            try:
                waves = future.result()
            except (subprocess.SubprocessError, OSError, sf.LibsndfileError) as exc:
                log.warning("TTS %s failed: %s", voice.key, exc)
                continue
            for text, wave in zip(job_texts, waves, strict=True):
                results.append((voice.key, text, np.asarray(wave, dtype=np.float64)))
    return results


def _load(cache: Path) -> list[tuple[str, str, np.ndarray]]:
    with np.load(cache, allow_pickle=False) as loaded:  # each [] re-reads: read once
        keys, texts, offsets, audio = (loaded[k] for k in ("keys", "texts", "offsets", "audio"))
    audio = audio.astype(np.float64)
    return [(str(k), str(t), audio[offsets[i] : offsets[i + 1]])
            for i, (k, t) in enumerate(zip(keys, texts, strict=True))]


def _save(cache: Path, results: list[tuple[str, str, np.ndarray]]) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [r[2].size for r in results])
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")  # concurrent runs: own temp file
    np.savez(tmp, keys=np.array([r[0] for r in results]),
             texts=np.array([r[1] for r in results]), offsets=offsets,
             audio=np.concatenate([r[2] for r in results]).astype(np.float32))
    tmp.replace(cache)
