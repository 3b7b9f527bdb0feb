"""Shared fixtures: the real recordings from ../shared beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FSDD = Path(os.environ.get("DIGITD_FSDD", REPO.parent / "shared" / "data" / "fsdd"))
SPEECH_COMMANDS = Path(os.environ.get("DIGITD_SPEECH_COMMANDS",
                                      REPO.parent / "shared" / "data" / "speech_commands"))


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    if not (FSDD / "recordings").is_dir():
        pytest.fail(f"FSDD recordings not found at {FSDD} (set DIGITD_FSDD)")
    return FSDD


@pytest.fixture(scope="session")
def recordings(fsdd_dir: Path) -> Path:
    return fsdd_dir / "recordings"


@pytest.fixture(scope="session")
def speech_commands() -> Path:
    if not (SPEECH_COMMANDS / "manifest.csv").is_file():
        pytest.fail(f"Speech Commands not found at {SPEECH_COMMANDS} "
                    "(set DIGITD_SPEECH_COMMANDS)")
    return SPEECH_COMMANDS
