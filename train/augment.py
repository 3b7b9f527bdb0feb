"""Waveform augmentation and sounds that are no word: what makes a few rooms sound like many.

Each function takes a numpy Generator so a seeded run is repeatable. Waveforms are mono
float at the model rate.
"""

from __future__ import annotations

import numpy as np


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent: 0 white, 1 pink, 2 brown."""
    spectrum = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    freqs = np.arange(n // 2 + 1, dtype=np.float64)
    freqs[0] = 1.0
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2.0), n)
    return noise / (np.std(noise) + 1e-12)


def babble(
    n: int, pool: list[np.ndarray], rng: np.random.Generator, talkers: int = 5
) -> np.ndarray:
    """Several other utterances overlapped at random offsets: a room full of voices."""
    out = np.zeros(n)
    for _ in range(talkers):
        src = pool[rng.integers(len(pool))]
        src = src / (np.std(src) + 1e-9)
        pos = 0
        while pos < n:  # tile with gaps so the babble covers the whole clip
            start = pos + int(rng.integers(0, max(1, src.size // 2)))
            seg = src[: max(0, min(src.size, n - start))]
            out[start : start + seg.size] += seg
            pos = start + max(1, src.size)
    return out / (np.std(out) + 1e-12)


def random_noise(n: int, pool: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    kind = rng.choice(["white", "pink", "brown", "babble"], p=[0.25, 0.3, 0.15, 0.3])
    if kind == "babble" and pool:
        return babble(n, pool, rng, talkers=int(rng.integers(3, 8)))
    return coloured_noise(n, {"white": 0.0, "pink": 1.0, "brown": 2.0}.get(kind, 1.0), rng)


def synthetic_rir(rt60: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Exponentially decaying noise tail after a direct impulse: a simple room."""
    n = int(rt60 * rate)
    t = np.arange(n) / rate
    tail = rng.normal(size=n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * rate)] = 0.0  # first reflections arrive after the direct path
    rir = tail * 10 ** (rng.uniform(-12, -3) / 20.0) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    rir[0] = 1.0
    return rir


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    n = x.size + rir.size - 1
    size = 1 << (n - 1).bit_length()
    wet = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(rir, size), size)[: x.size]
    return wet * (np.std(x) / (np.std(wet) + 1e-12))


def random_eq(x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random gain curve (+-9 dB), sometimes band-limited like a telephone."""
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.size, 1.0 / rate)
    knots = np.linspace(0, rate / 2, 6)
    gain_db = np.interp(freqs, knots, rng.uniform(-9, 9, size=knots.size))
    if rng.random() < 0.3:
        low, high = rng.uniform(150, 400), rng.uniform(2800, 3800)
        gain_db = np.where((freqs < low) | (freqs > high), gain_db - 30.0, gain_db)
    return np.fft.irfft(spectrum * 10 ** (gain_db / 20.0), x.size)


def tones(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A few sustained or gliding sine tones: beeps, whistles."""
    t = np.arange(n) / rate
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        f0, f1 = rng.uniform(100, 3500, size=2)
        phase = 2 * np.pi * np.cumsum(np.linspace(f0, f1 if rng.random() < 0.4 else f0, n)) / rate
        envelope = np.clip(np.sin(np.pi * t / t[-1]) * rng.uniform(1, 4), 0, 1) if n > 1 else 1.0
        out += np.sin(phase) * envelope
    return out


def music(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Music as a radio or TV in the room plays it: notes of one to three instruments, each a
    random harmonic timbre (spectral slope, odd/even balance, a piano's stretched partials)
    with its own attack, decay and vibrato, sometimes over drum hits. Voiced and harmonic
    like speech, so the model must learn that harmonics alone are not a word."""
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        k = np.arange(1, int(rng.integers(1, 13)) + 1)
        amps = k ** -rng.uniform(0.5, 2.5) * np.where(k % 2 == 0, rng.uniform(0, 1), 1.0)
        stretch = np.sqrt(1 + rng.uniform(0, 1e-3) * k**2)
        attack, decay = rng.uniform(0.002, 0.1), rng.uniform(0.0, 8.0)
        vibrato_depth, vibrato_hz = rng.uniform(0, 0.01), rng.uniform(4, 7)
        low = int(rng.integers(36, 72))  # lowest note, MIDI 36-71: 65-494 Hz
        t = int(rng.integers(0, max(1, n // 4)))
        while t < n:
            seg = min(n - t, int(rng.uniform(0.08, 0.9) * rate))
            time = np.arange(seg) / rate
            f0 = 440.0 * 2 ** ((low + int(rng.integers(0, 15)) - 69) / 12)
            phase = 2 * np.pi * f0 * np.cumsum(
                1 + vibrato_depth * np.sin(2 * np.pi * vibrato_hz * time)) / rate
            keep = f0 * k * stretch < rate / 2
            note = np.sin(np.outer(phase, k[keep] * stretch[keep])) @ amps[keep]
            envelope = np.minimum(1.0, time / attack) * np.exp(-decay * time)
            out[t : t + seg] += note * envelope * rng.uniform(0.3, 1.0)
            t += seg + (int(rng.uniform(0, 0.3) * rate) if rng.random() < 0.3 else 0)
    # Drums: noise hits on a beat, each scaled by the loudest sample so far.
    if rng.random() < 0.4:
        beat = int(rng.uniform(0.2, 0.6) * rate)
        for start in range(int(rng.integers(0, beat)), n, beat):
            hit = min(n - start, int(0.15 * rate))
            out[start : start + hit] += (coloured_noise(hit, rng.uniform(0, 2), rng)
                                         * np.exp(-np.arange(hit) / (0.03 * rate))
                                         * rng.uniform(0.2, 1.0) * np.abs(out).max(initial=1))
    return out / (np.abs(out).max() + 1e-12)
