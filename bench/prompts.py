"""Allison Smith's recorded English prompts (Debian's asterisk-core-sounds-en-wav, CC BY-SA
3.0, Digium, Inc.): a real woman's voice the benchmark scores and training never hears.

Her ten digits, one take each, and her one-word prompts that are not digits (letters, the
phonetic alphabet, teens and tens, days, months, "hello"...): the benchmark's recorded
voice for digits and for words that must be rejected. Nothing is downloaded: without the
package the benchmark goes on without her, with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from digitd.daemon.audio import AudioError, read_audio

log = logging.getLogger(__name__)

DEFAULT_DIR = Path("/usr/share/asterisk/sounds")
ENGLISH = "en_US_f_Allison"
PACKAGE = "asterisk-core-sounds-en-wav"
DIGIT_FILES = {f"digits/{d}.wav": d for d in range(10)}
# Recordings that are not "not a digit": homophones and near-homophones of digits ("for",
# "oh" and the letter O said for zero, "niner"), and ordinals that are a digit plus a
# breath of "th" (fourth ... ninth).
NOT_UNKNOWN = frozenset(
    ["for.wav", "digits/oh.wav", "letters/o.wav", "phonetic/9_p.wav"]
    + [f"digits/h-{d}.wav" for d in range(4, 10)]
)
# Folders whose every file is one word; at the top level, one word = no dash in the name.
WORD_FOLDERS = ("digits", "letters", "phonetic")


@dataclass
class PromptVoice:
    digit_waves: list[np.ndarray] = field(default_factory=list)
    digit_labels: list[int] = field(default_factory=list)
    word_waves: list[np.ndarray] = field(default_factory=list)  # one-word, not a digit
    skipped: int = 0  # unreadable files


def english_word_files(voice_dir: Path) -> list[Path]:
    """The English recordings that are one word and not a digit."""
    files = [p for p in sorted(voice_dir.glob("*.wav")) if "-" not in p.stem]
    for folder in WORD_FOLDERS:
        files += sorted((voice_dir / folder).glob("*.wav"))
    relative = {p: p.relative_to(voice_dir).as_posix() for p in files}
    return [p for p in files if relative[p] not in NOT_UNKNOWN
            and relative[p] not in DIGIT_FILES]


def load_allison(rate: int, root: Path = DEFAULT_DIR) -> PromptVoice:
    """Her digits and words at `rate`; unreadable files skipped and counted, silent takes
    left out, an absent package a warning."""
    out = PromptVoice()
    voice_dir = root / ENGLISH
    if not voice_dir.is_dir():
        log.warning("recorded prompt voice not installed under %s (Debian package %s); "
                    "going on without it", root, PACKAGE)
        return out

    def read(path: Path) -> np.ndarray | None:
        try:
            wave = read_audio(path, rate).astype(np.float64)
        except AudioError as exc:
            log.warning("skipping unreadable prompt recording: %s", exc)
            out.skipped += 1
            return None
        return wave if np.max(np.abs(wave)) >= 1e-3 else None  # silence files, empty takes

    for name, digit in DIGIT_FILES.items():
        wave = read(voice_dir / name) if (voice_dir / name).is_file() else None
        if wave is not None:
            out.digit_waves.append(wave)
            out.digit_labels.append(digit)
    out.word_waves = [w for w in map(read, english_word_files(voice_dir)) if w is not None]
    return out
