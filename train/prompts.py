"""Real recorded voices from Debian's Asterisk prompt packages: people, not synthesizers.

FSDD is six men; the TTS engines add women's voices, but synthetic ones. The Asterisk core
sounds (asterisk-core-sounds-{en,es,fr,it,ru}-wav, CC BY-SA 3.0 and CC BY 3.0, recorded by
Allison Smith, June Wallack, Carlo Flora and others) are studio recordings of real speakers:

- English (Allison, a woman): the ten digits, one take each, added to the digit classes.
- English single words that are not digits (letters, the phonetic alphabet, teens and
  tens, days, months, "hello", "minutes" ...): the unknown class, in a voice that also says
  digits, so the model cannot learn "this voice is not a digit".
- Spanish, French, Italian and Russian prompts (their digit folders left out): cut into
  word-length pieces: real speech, three more voices and Allison's Spanish, no English digit.

Nothing is downloaded: an absent package is skipped with a warning, as a TTS engine is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from digitd.daemon.audio import AudioError, read_audio

log = logging.getLogger(__name__)

DEFAULT_DIR = Path("/usr/share/asterisk/sounds")
# Who each recorded voice folder is and under what licence, as a model trained on pieces of
# it must credit them. A folder without an entry here is never trained on.
PEOPLE_CREDITS = {
    "fr_CA_f_June": "French recorded by June Wallack (Asterisk core sound prompts 1.6.1, "
                    "Digium, Inc.), CC BY-SA 3.0",
    "it_IT_m_Carlo": "Italian recorded by Carlo Flora (Asterisk core sound prompts 1.6.1, "
                     "Digium, Inc.), CC BY 3.0",
    "ru_RU_f_IvrvoiceRU": "Russian provided by Maxim Topal, ivrvoice.ru (Asterisk core sound "
                          "prompts 1.6.1, Digium, Inc.), CC BY 3.0",
    "en_US_f_Allison": "English recorded by Allison Smith (Asterisk core sound prompts "
                       "1.6.1, Digium, Inc.), CC BY-SA 3.0",
    "es_MX_f_Allison": "Spanish recorded by Allison Smith (Asterisk core sound prompts "
                       "1.6.1, Digium, Inc.), CC BY-SA 3.0",
    # Their licence asks that end users be shown who made the recordings and where to get
    # them: README's licence section and every model's metadata do.
    "it_IT_f_Menardi": "Italian prompts made by Marco Menardi and Paola Dal Zot, "
                       "http://www.voip.ammdomus.it (Debian's asterisk-prompt-it-menardi), "
                       "CC BY-SA 3.0 Italy",
}


def attribution(voices: list[str] | tuple[str, ...]) -> str:
    """The licence text's credit for a model trained on these recorded voice folders."""
    credits = [PEOPLE_CREDITS[v] for v in voices]
    return ("Also trained on recorded people: " + "; ".join(credits) + ".") if credits else ""


ENGLISH = "en_US_f_Allison"
OTHER_LANGUAGES = ("es_MX_f_Allison", "fr_CA_f_June", "it_IT_m_Carlo", "ru_RU_f_IvrvoiceRU")
# The prompt voices that are not Allison Smith's (her English is the benchmark's recorded
# voice, so training that must leave her unheard takes only these): three more people.
OTHER_PEOPLE = ("fr_CA_f_June", "it_IT_m_Carlo", "ru_RU_f_IvrvoiceRU")
# Every voice that pieces may be cut from (TrainConfig.real_people chooses among them):
# OTHER_PEOPLE and the Italian woman of Debian's asterisk-prompt-it-menardi-wav.
PIECE_PEOPLE = (*OTHER_PEOPLE, "it_IT_f_Menardi")
DIGIT_FILES = {f"digits/{d}.wav": d for d in range(10)}


def debian_package(voice: str) -> str:
    """The Debian package that installs a voice folder, for the message when it is absent."""
    if voice == "it_IT_f_Menardi":
        return "asterisk-prompt-it-menardi-wav"
    return f"asterisk-core-sounds-{voice[:2]}-wav"  # Digium's core sounds, one per language

# English recordings that must not teach "not a digit": homophones and near-homophones of
# digits ("for", "oh" and the letter O said for zero, "niner"), and ordinals that are a
# digit plus a breath of "th" (fourth ... ninth).
NOT_UNKNOWN = frozenset(
    ["for.wav", "digits/oh.wav", "letters/o.wav", "phonetic/9_p.wav"]
    + [f"digits/h-{d}.wav" for d in range(4, 10)]
)
# English folders whose every file is one word; at the top level, one word = no dash.
ENGLISH_WORD_FOLDERS = ("digits", "letters", "phonetic")
# Other languages' folders left out: their digits (Spanish "cero", French "six"), silence.
SKIPPED_FOLDERS = ("digits", "silence")


@dataclass
class PromptVoices:
    digit_waves: list[np.ndarray] = field(default_factory=list)
    digit_labels: list[int] = field(default_factory=list)
    word_waves: list[np.ndarray] = field(default_factory=list)  # English non-digit words
    pieces: list[np.ndarray] = field(default_factory=list)  # other languages, word-length
    skipped: int = 0
    voices: list[str] = field(default_factory=list)  # folders at least one recording came from

    def summary(self) -> str:
        return (f"{len(self.digit_waves)} digits, {len(self.word_waves)} words, "
                f"{len(self.pieces)} pieces of other languages' prompts")


def english_word_files(voice_dir: Path) -> list[Path]:
    """The English recordings that are one word and not a digit."""
    files = [p for p in sorted(voice_dir.glob("*.wav")) if "-" not in p.stem]
    for folder in ENGLISH_WORD_FOLDERS:
        files += sorted((voice_dir / folder).glob("*.wav"))
    relative = {p: p.relative_to(voice_dir).as_posix() for p in files}
    return [p for p in files if relative[p] not in NOT_UNKNOWN
            and relative[p] not in DIGIT_FILES]


def other_language_files(voice_dir: Path) -> list[Path]:
    return [p for p in sorted(voice_dir.rglob("*.wav"))
            if p.relative_to(voice_dir).parts[0] not in SKIPPED_FOLDERS]


def word_piece(wave: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A word-length stretch (0.3-1.0 s) of a longer recording, the whole of a shorter one."""
    length = int(rng.uniform(0.3, 1.0) * rate)
    if wave.size <= length:
        return wave
    start = int(rng.integers(0, wave.size - length))
    return wave[start : start + length]


PAUSE_DB = 30.0  # a pause: this far below the recording's loudest 10 ms
PAUSE_FRAMES = 4  # and at least this many 10 ms frames long


def pause_points(wave: np.ndarray, rate: int) -> np.ndarray:
    """Sample positions where a recording pauses (the middle of each stretch of at least
    PAUSE_FRAMES quiet frames), and its two ends: where a spoken word can begin or end."""
    frame = rate // 100
    n = wave.size // frame
    if n == 0:
        return np.array([0, wave.size])
    level = 10 * np.log10(np.mean(wave[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    quiet = np.concatenate([[False], level < level.max() - PAUSE_DB, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    middles = [(a + b) // 2 * frame for a, b in zip(starts, ends, strict=True)
               if b - a >= PAUSE_FRAMES]
    return np.unique([0, *middles, wave.size])


def pause_piece(wave: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Like word_piece, but from one pause to another: whole words or runs of words, as
    a person saying a word alone sounds, not a stretch that starts or stops mid-sound. A
    recording with no such stretch gives word_piece's."""
    points = pause_points(wave, rate)
    length = np.subtract.outer(points, points)  # [end, start]
    ends, starts = np.nonzero((length >= 0.3 * rate) & (length <= 1.0 * rate))
    if not len(starts):
        return word_piece(wave, rate, rng)
    k = int(rng.integers(len(starts)))
    return wave[points[starts[k]] : points[ends[k]]]


def load_prompt_voices(rate: int, root: Path = DEFAULT_DIR, seed: int = 0,
                       other_languages: tuple[str, ...] = OTHER_LANGUAGES,
                       english: bool = True, pieces_per_file: int = 1,
                       at_pauses: bool = False) -> PromptVoices:
    """Every usable recording under `root`, at `rate`; unreadable files are skipped and
    counted, absent languages warned about. other_languages=() reads Allison's English
    alone (the benchmark's recorded voice); english=False leaves her English out.
    pieces_per_file: word-length pieces cut from each other-language recording, at
    independent places (one from a recording no longer than a piece); at_pauses cuts
    them from pause to pause (pause_piece)."""
    cut = pause_piece if at_pauses else word_piece
    out = PromptVoices()
    rng = np.random.default_rng([seed, 31])

    def read(path: Path) -> np.ndarray | None:
        try:
            wave = read_audio(path, rate).astype(np.float64)
        except AudioError as exc:
            log.warning("skipping unreadable prompt recording: %s", exc)
            out.skipped += 1
            return None
        if np.max(np.abs(wave)) < 1e-3:  # silence files and empty takes
            return None
        return wave

    english_dir = root / ENGLISH
    if english and english_dir.is_dir():
        for name, digit in DIGIT_FILES.items():
            wave = read(english_dir / name) if (english_dir / name).is_file() else None
            if wave is not None:
                out.digit_waves.append(wave)
                out.digit_labels.append(digit)
        out.word_waves += [w for w in map(read, english_word_files(english_dir))
                           if w is not None]
        if out.digit_waves or out.word_waves:
            out.voices.append(ENGLISH)
    for language in other_languages:
        if (root / language).is_dir():
            before = len(out.pieces)
            for path in other_language_files(root / language):
                wave = read(path)
                if wave is None:
                    continue
                for k in range(pieces_per_file):
                    piece = cut(wave, rate, rng)
                    if k and piece.size == wave.size:  # the whole file: once is enough
                        break
                    out.pieces.append(piece)
            if len(out.pieces) > before:
                out.voices.append(language)
    wanted = (ENGLISH,) * english + tuple(other_languages)
    missing = [v for v in wanted if not (root / v).is_dir()]
    if missing:
        log.warning("recorded prompt voices not installed under %s: %s (Debian packages %s); "
                    "going on without them", root, ", ".join(missing),
                    ", ".join(debian_package(v) for v in missing))
    return out
