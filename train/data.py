"""The Free Spoken Digit Dataset: find it, download and verify it, load it.

FSDD v1.0.10 by Zohar Jackson and contributors, CC BY-SA 4.0, DOI 10.5281/zenodo.1342401.
Files are named {digit}_{speaker}_{take}.wav; six adult male speakers, 8 kHz.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from digitd.daemon.audio import AudioError, read_audio

log = logging.getLogger(__name__)

FSDD_VERSION = "v1.0.10"
FSDD_URL = (
    "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
)
FSDD_ATTRIBUTION = (
    "Trained on the Free Spoken Digit Dataset (FSDD) v1.0.10 by Zohar Jackson and "
    "contributors (github.com/Jakobovski/free-spoken-digit-dataset, DOI 10.5281/zenodo.1342401), "
    "licensed CC BY-SA 4.0. This model is a derived work and is shared under CC BY-SA 4.0."
)
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
NAME_PATTERN = re.compile(r"^([0-9])_([a-z]+)_([0-9]+)\.wav$")


class DataError(Exception):
    """The dataset cannot be found, downloaded or verified."""


def pinned_checksums() -> dict[str, str]:
    """SHA256 of every file in recordings/ of the pinned release, shipped with the package."""
    text = resources.files("digitd.train").joinpath("fsdd_v1.0.10.SHA256SUMS").read_text()
    return parse_checksums(text)


def parse_checksums(text: str) -> dict[str, str]:
    sums = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest.lower()
    return sums


def user_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "digitd" / "fsdd"


def default_data_dir() -> Path:
    """../shared/data/fsdd beside a checkout if it is there, else the per-user data dir."""
    checkout = Path(__file__).resolve().parent.parent
    shared = checkout.parent / "shared" / "data" / "fsdd"
    if (shared / "recordings").is_dir():
        return shared
    return user_data_dir()


def recordings_dir(folder: Path) -> Path:
    """Accept the dataset folder, its recordings/ folder, or an unpacked release archive."""
    folder = Path(folder)
    for candidate in (folder / "recordings", folder, *sorted(folder.glob("*/recordings"))):
        if candidate.is_dir() and any(candidate.glob("*.wav")):
            return candidate
    raise DataError(
        f"no FSDD recordings found under {folder}; run `digitd-train download` "
        f"or pass --data pointing at a folder with recordings/*.wav"
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    dest: Path,
    url: str = FSDD_URL,
    checksums: dict[str, str] | None = None,
) -> Path:
    """Fetch the release archive, unpack recordings/ into dest/recordings, verify every file.

    Nothing is left in dest unless every pinned file is present with its pinned hash.
    """
    checksums = checksums if checksums is not None else pinned_checksums()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fsdd-download-") as tmp:
        archive = Path(tmp) / "fsdd.tar.gz"
        log.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            raise DataError(f"download of {url} failed: {exc}") from exc
        staging = Path(tmp) / "recordings"
        staging.mkdir()
        try:
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    parts = Path(member.name).parts
                    if member.isfile() and len(parts) >= 2 and parts[-2] == "recordings":
                        member.name = parts[-1]
                        tar.extract(member, staging, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise DataError(f"{url} is not a readable tar.gz archive: {exc}") from exc
        problems = verify(staging, checksums)
        if problems:
            shown = "; ".join(problems[:5])
            raise DataError(f"downloaded FSDD failed verification ({len(problems)}): {shown}")
        dest.mkdir(parents=True, exist_ok=True)
        final = dest / "recordings"
        if final.exists():
            shutil.rmtree(final)
        shutil.move(str(staging), final)
        (dest / "SHA256SUMS").write_text(
            "".join(f"{checksums[name]}  {name}\n" for name in sorted(checksums))
        )
    log.info("FSDD %s verified (%d files) in %s", FSDD_VERSION, len(checksums), final)
    return dest


def verify(folder: Path, checksums: dict[str, str]) -> list[str]:
    """Every problem found: missing files and hash mismatches."""
    problems = []
    for name, expected in sorted(checksums.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"missing {name}")
        elif sha256_file(path) != expected:
            problems.append(f"checksum mismatch {name}")
    return problems


@dataclass
class Clips:
    """Recordings, who said each and its file; parallel lists so subsets are cheap to take.
    A clip that cannot be read is skipped, counted and logged."""

    waves: list[np.ndarray] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.waves)

    def read(self, path: Path, rate: int, speaker: str, name: str) -> bool:
        """Append the clip at `path`; False (skipped, counted, logged) when unreadable."""
        try:
            wave = read_audio(path, rate)
        except AudioError as exc:
            log.warning("skipping unreadable file: %s", exc)
            self.skipped += 1
            return False
        self.waves.append(wave)
        self.speakers.append(speaker)
        self.names.append(name)
        return True


@dataclass
class Utterances(Clips):
    """FSDD's clips and the digit each says."""

    digits: list[int] = field(default_factory=list)

    def subset(self, keep: np.ndarray | list[bool]) -> Utterances:
        idx = np.flatnonzero(np.asarray(keep))
        return Utterances(
            waves=[self.waves[i] for i in idx],
            digits=[self.digits[i] for i in idx],
            speakers=[self.speakers[i] for i in idx],
            names=[self.names[i] for i in idx],
        )


def load_fsdd(folder: Path, rate: int, limit_per_class: int | None = None) -> Utterances:
    """Load every well-named, readable recording; skip (warn and count) the rest."""
    rec = recordings_dir(folder)
    data = Utterances()
    per_key: dict[tuple[int, str], int] = {}
    for path in sorted(rec.glob("*.wav")):
        match = NAME_PATTERN.match(path.name)
        if not match:
            log.warning("skipping misnamed file %s (expected digit_speaker_take.wav)", path.name)
            data.skipped += 1
            continue
        digit, speaker = int(match.group(1)), match.group(2)
        if limit_per_class is not None:
            count = per_key.get((digit, speaker), 0)
            if count >= limit_per_class:
                continue
            per_key[(digit, speaker)] = count + 1
        if data.read(path, rate, speaker, path.name):
            data.digits.append(digit)
    if data.skipped:
        log.warning("skipped %d bad file(s) in %s", data.skipped, rec)
    if not data.waves:
        raise DataError(f"no usable recordings in {rec}")
    return data


def data_hash(data: Utterances) -> str:
    """A hash of the training material's names and samples, recorded in model metadata."""
    digest = hashlib.sha256()
    for name, wave in sorted(zip(data.names, data.waves, strict=True), key=lambda t: t[0]):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(wave, dtype=np.float32).tobytes())
    return digest.hexdigest()


# Speech Commands (Warden 2018), the subset in ../shared/data/speech_commands: real voices of
# many people on their own microphones; mostly non-digit words, the "not a digit" class's
# real speech.
SPEECH_COMMANDS_ATTRIBUTION = (
    "Trained on a subset of Google's Speech Commands dataset (Pete Warden, 'Speech Commands: "
    "A Dataset for Limited-Vocabulary Speech Recognition', arXiv:1804.03209, 2018), versions "
    "0.01 and 0.02, licensed CC BY 4.0 by Google."
)
SC_NAME = re.compile(r"^([0-9a-f]{8})_nohash_([0-9]+)\.(flac|wav)$")
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass
class Words(Clips):
    """Clips of one word each and the word said."""

    words: list[str] = field(default_factory=list)


def default_speech_commands_dir() -> Path:
    """../shared/data/speech_commands beside a checkout, or $DIGITD_SPEECH_COMMANDS."""
    env = os.environ.get("DIGITD_SPEECH_COMMANDS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "speech_commands"


def load_speech_commands(folder: Path, rate: int, limit_per_word: int | None = None) -> Words:
    """Every readable `{word}/{speaker}_nohash_{n}` clip; bad files are skipped and counted.
    `limit_per_word` keeps the first clips of each word (tests)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"no Speech Commands folder at {folder} (set DIGITD_SPEECH_COMMANDS)")
    data = Words()
    for word_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        paths = sorted(p for p in word_dir.iterdir() if SC_NAME.match(p.name))
        for path in paths[:limit_per_word]:
            if data.read(path, rate, SC_NAME.match(path.name).group(1),
                         f"{word_dir.name}/{path.name}"):
                data.words.append(word_dir.name)
    if not data.waves:
        raise DataError(f"no usable Speech Commands clips in {folder}")
    return data
