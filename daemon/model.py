"""The shipped model: the speech embedding and the digit classifier, their metadata, and the
rejection rule.

TFLite files, one per stage, described by one metadata JSON (models/digitd.json):
  embedding  76 log-mel frames -> one 96-dim vector (Google's speech_embedding, int8); with
             "embedding_phases" 2, one vector every 40 ms: two 80 ms grids, interleaved
  head       head_embeddings consecutive vectors of one grid -> probabilities of 0-9 and
             "unknown"; a word's probabilities are the mean over the grids (two looks at
             the word, 40 ms apart, err less than one); with "speeds", also the mean
             over the word played at each of those tape speeds (0.9: 10% slower and
             lower): a voice the head heard too little of comes nearer to ones it heard
  strings    any number of vectors -> per vector, CTC probabilities of "nothing new" (blank),
             0-9 and "a word that is no digit": digit strings said with no pause (optional)
The stages are separate so the head and the strings stage read the same embeddings, from
one pass over a word's or a string's audio. Every setting the runtime needs is read from the
metadata.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .features import (
    FeatureConfig,
    check_waveform,
    log_mel,
    noise_floor,
    string_audio,
    trim_silence,
    utterance_window,
    window_mel,
)

log = logging.getLogger(__name__)

MODEL_FILENAME = "digitd.json"
MODEL_FORMAT = "digitd-model/2"
UNKNOWN_LABEL = "unknown"
STRING_TOKENS = ("blank", *(str(d) for d in range(10)), UNKNOWN_LABEL)  # the strings stage's


class ModelError(Exception):
    """The model or its metadata is missing or unusable."""


def default_model_path() -> Path:
    """The model shipped as package data in digitd.models (its metadata JSON)."""
    return Path(str(resources.files("digitd.models").joinpath(MODEL_FILENAME)))


@dataclass(frozen=True)
class RejectionRule:
    """When the model's answer is not printed. Two separate questions: "is it a digit at
    all?" (the unknown class's probability) and "which digit?" (the best probability).
    A word that rhymes with a digit comes out as a fairly sure digit with some unknown
    mass; a hard real digit comes out unsure between digits with little. Both limits are
    calibrated on held-out speakers and word types (train/evaluate.py)."""

    min_confidence: float  # reject when the best probability is below this
    max_unknown: float = 1.0  # reject when p(unknown) reaches this; 1.0 = top label only

    def digits(self, probs: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
        """Decided digit per row of probabilities (n x labels), -1 where rejected."""
        probs = np.atleast_2d(probs)
        best = np.argmax(probs, axis=1)
        digit_of_label = np.array([int(x) if x.isdigit() else -1 for x in labels])
        accept = (digit_of_label[best] >= 0) & (probs[np.arange(len(probs)), best]
                                                >= self.min_confidence)
        if UNKNOWN_LABEL in labels:
            accept &= probs[:, labels.index(UNKNOWN_LABEL)] < self.max_unknown
        return np.where(accept, digit_of_label[best], -1)

    def describe(self) -> str:
        return (f"reject when the arg-max label is '{UNKNOWN_LABEL}', or p({UNKNOWN_LABEL}) >= "
                f"{self.max_unknown:.2f}, or the best probability < {self.min_confidence:.2f}")

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.describe(), "min_confidence": self.min_confidence,
                "max_unknown": self.max_unknown}


@dataclass(frozen=True)
class ModelMetadata:
    """models/digitd.json: the one description of a model, read and written here only."""

    labels: tuple[str, ...]
    features: FeatureConfig
    rejection: RejectionRule
    files: dict[str, str]  # stage -> TFLite file name beside the JSON
    raw: dict[str, Any]
    phases: int = 1  # embedding grids the embedding stage interleaves, 80 ms // phases apart
    speeds: tuple[float, ...] = (1.0,)  # tape speeds a word is classified at, averaged

    @property
    def sample_rate(self) -> int:
        return self.features.sample_rate

    @property
    def attribution(self) -> list[str]:
        """Who made what the model was trained on, as its licences ask to be credited."""
        return [str(a) for a in self.raw.get("attribution", [])]

    @classmethod
    def load(cls, path: Path) -> ModelMetadata:
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ModelError(f"model metadata not found: {path}") from exc
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"model metadata unreadable: {path}: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format") != MODEL_FORMAT:
            found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise ModelError(f"model metadata {path}: format {found!r} is not {MODEL_FORMAT!r}"
                             " (a model from another digitd version?)")
        try:
            labels = tuple(str(label) for label in raw["labels"])
            features = FeatureConfig.from_dict(raw["features"])
            rejection = RejectionRule(min_confidence=float(raw["rejection"]["min_confidence"]),
                                      max_unknown=float(raw["rejection"]["max_unknown"]))
            files = {"embedding": str(raw["files"]["embedding"]),
                     "head": str(raw["files"]["head"])}
            phases = int(raw.get("embedding_phases", 1))
            if phases not in (1, 2):
                raise ValueError(f"embedding_phases {raw['embedding_phases']!r}: 1 or 2")
            speeds = tuple(float(v) for v in raw.get("speeds", [1.0]))
            if not speeds or not all(0.5 <= v <= 2.0 for v in speeds):
                raise ValueError(f"speeds {raw['speeds']!r}: one or more within 0.5-2")
            if raw["files"].get("strings"):
                files["strings"] = str(raw["files"]["strings"])
                float(raw["strings"]["min_confidence"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"model metadata {path} is incomplete: {exc!r}") from exc
        return cls(labels=labels, features=features, rejection=rejection, files=files, raw=raw,
                   phases=phases, speeds=speeds)

    @staticmethod
    def write(path: Path, labels: tuple[str, ...], features: FeatureConfig,
              rejection: RejectionRule, files: dict[str, str], **extra: Any) -> None:
        """The metadata JSON of a model whose stage files are already beside `path`."""
        raw = {"format": MODEL_FORMAT, "labels": list(labels), "features": features.to_dict(),
               "rejection": rejection.to_dict(), "files": files, **extra}
        Path(path).write_text(json.dumps(raw, indent=2) + "\n")


def load_interpreter(model_path: Path, num_threads: int = 1,
                     input_shape: tuple[int, ...] | None = None, delegates: bool = True) -> Any:
    """A TFLite interpreter from the first runtime installed: LiteRT, tflite_runtime, TF.
    `input_shape` sizes an input with a free dimension before its tensors are allocated;
    `delegates` False keeps XNNPACK out (the built-in kernels only)."""
    try:
        from ai_edge_litert import interpreter as runtime
    except ImportError:
        try:
            from tflite_runtime import interpreter as runtime
        except ImportError:
            try:
                import tensorflow as tf  # last resort: heavy, but present on training machines

                runtime = tf.lite
            except ImportError as exc:
                raise ModelError(
                    "no TFLite runtime installed: pip install ai-edge-litert "
                    "(or tflite-runtime on platforms LiteRT does not support)"
                ) from exc
    if not Path(model_path).is_file():
        raise ModelError(f"model file not found: {model_path}")
    options = {}
    if not delegates:  # LiteRT and tflite_runtime name it at the top, TF under experimental
        resolver = getattr(runtime, "OpResolverType", None) or runtime.experimental.OpResolverType
        options["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = runtime.Interpreter(model_path=str(model_path), num_threads=num_threads,
                                          **options)
        if input_shape is not None:
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, list(input_shape))
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load model {model_path}: {exc}") from exc
    return interpreter


class Stage:
    """One TFLite file: float in, float out; int8 quantization read from the interpreter.

    `signature` is the input shape without the batch; None marks a free dimension (the
    embedding stage takes any number of mel frames and returns one vector per 8)."""

    def __init__(self, path: Path, signature: tuple[int | None, ...], num_threads: int = 1,
                 delegates: bool = True) -> None:
        self.path = path
        self._shape = (1, *(1 if s is None else s for s in signature))
        if None in signature:  # a free dimension must be sized before allocation
            self._shape = (1, *(76 if s is None else s for s in signature))
        self._interpreter = load_interpreter(path, num_threads, self._shape, delegates)
        self._input = self._interpreter.get_input_details()[0]
        self._output_index = self._interpreter.get_output_details()[0]["index"]
        found = tuple(int(s) for s in self._input.get("shape_signature",
                                                      self._input["shape"])[1:])
        if len(found) != len(signature) or any(
                want is not None and got != want for got, want in zip(found, signature,
                                                                        strict=False)):
            raise ModelError(f"{path}: input shape {found} does not match its metadata's "
                             f"{signature}")
        self._in_scale, self._in_zero = self._input["quantization"]
        out = self._interpreter.get_output_details()[0]
        self._out_scale, self._out_zero = out["quantization"]

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return x.astype(np.float32)
        info = np.iinfo(dtype)
        return np.clip(np.round(x / self._in_scale + self._in_zero), info.min, info.max
                       ).astype(dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x with its batch dimension -> the output, dequantized."""
        if x.shape != self._shape:
            self._interpreter.resize_tensor_input(self._input["index"], list(x.shape))
            self._interpreter.allocate_tensors()
            self._shape = x.shape
        self._interpreter.set_tensor(self._input["index"], self._quantize(x))
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._output_index)
        if out.dtype != np.float32:
            out = (out.astype(np.float32) - self._out_zero) * self._out_scale
        return out


@dataclass(frozen=True)
class Prediction:
    digit: int | None  # None: rejected (not a digit, or not sure enough)
    label: str  # the arg-max label, "unknown" included
    confidence: float  # probability of the arg-max label
    probabilities: np.ndarray


def probe_mel(cfg: FeatureConfig) -> np.ndarray:
    """The mel window of the bundled sample's first second: the input of the load-time check."""
    from .audio import read_audio

    sample = resources.files("digitd.daemon").joinpath("samples/four-two-seven.wav")
    return window_mel(read_audio(str(sample), cfg.sample_rate)[: cfg.sample_rate], cfg)


PROBE_MIN_COSINE = 0.98  # int8 kernels differ in rounding; a broken one is far below


def lead_samples(cfg: FeatureConfig, phases: int) -> int:
    """Audio before the head's window that the earlier embedding grids read (0 with one)."""
    return (phases - 1) * cfg.embedding_samples // phases


def head_inputs(vectors: np.ndarray, phases: int, cfg: FeatureConfig) -> list[np.ndarray]:
    """The head's input on each grid of a window's vectors (..., n, 96): the last
    head_embeddings of every phases-th vector. The last grid is the one training placed
    words in (it ends at the window's end); the others end 80 ms // phases earlier."""
    n = cfg.head_embeddings
    return [vectors[..., p::phases, :][..., -n:, :] for p in range(phases)]


class DigitClassifier:
    """Audio -> Prediction with the model's rejection rule. One interpreter per stage.

    At load, both stages' outputs on a known input are checked against what they gave where
    the model was exported ("probe" in its metadata): XNNPACK's int8 kernels have been seen
    to compute garbage on emulated arm64; the built-in kernels then take over."""

    def __init__(self, model_path: Path | None = None, num_threads: int = 1) -> None:
        self.model_path = Path(model_path) if model_path else default_model_path()
        if self.model_path.suffix == ".tflite":  # the head's file named: its JSON is beside
            self.model_path = self.model_path.with_name(MODEL_FILENAME)
        self.metadata = ModelMetadata.load(self.model_path)
        self.rejection = self.metadata.rejection  # settings may replace it (cli)
        self._load_stages(num_threads, delegates=True)
        expected = self.metadata.raw.get("probe")
        if expected is not None and not self._probe_agrees(expected):
            log.warning("the TFLite runtime's XNNPACK kernels computed the model wrongly on "
                        "this machine; using its built-in kernels instead")
            self._load_stages(num_threads, delegates=False)
            if not self._probe_agrees(expected):
                raise ModelError(f"{self.model_path}: the TFLite runtime computes this model "
                                 "wrongly on this machine, with or without XNNPACK")

    def _load_stages(self, num_threads: int, delegates: bool) -> None:
        f, folder = self.metadata.features, self.model_path.parent
        self.embedding_stage = Stage(folder / self.metadata.files["embedding"],
                                     (None, f.n_mels, 1), num_threads, delegates)
        self._check_phases(folder / self.metadata.files["embedding"])
        self.head = Stage(folder / self.metadata.files["head"], (f.head_embeddings, 96),
                          num_threads, delegates)
        strings = self.metadata.files.get("strings")
        self.strings = (Stage(folder / strings, (None, 96), num_threads, delegates)
                        if strings else None)

    def _check_phases(self, path: Path) -> None:
        """A metadata file paired with another embedding file would read its vectors on the
        wrong grid; say so here rather than fail the probe with a vaguer message."""
        f, phases = self.features, self.metadata.phases
        mel = np.zeros((1, f.embedding_frames + f.embedding_step, f.n_mels, 1), np.float32)
        grids = self.embedding_stage(mel).shape[1] - 1
        if grids != phases:
            raise ModelError(f"{path} interleaves {grids} embedding grid(s) but its metadata's "
                             f"embedding_phases says {phases}: the two files do not belong "
                             "together")

    def probe(self) -> dict[str, list]:
        """Both stages' outputs on the bundled sample: export stores them in the metadata."""
        embeddings = self.embeddings(probe_mel(self.features))
        probabilities = self.head(embeddings[None, -self.features.head_embeddings :])[0]
        out = {"embedding": np.round(embeddings, 4).tolist(),
               "head": np.round(probabilities, 4).tolist()}
        if self.strings is not None:
            out["strings"] = np.round(self.strings(embeddings[None])[0], 4).tolist()
        return out

    def _probe_agrees(self, expected: dict[str, list]) -> bool:
        got = self.probe()
        for stage in got:
            a = np.asarray(got[stage], dtype=np.float32).ravel()
            b = np.asarray(expected.get(stage, []), dtype=np.float32).ravel()
            if a.shape != b.shape:
                return False
            cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
            if cosine < PROBE_MIN_COSINE:
                return False
        return True

    @property
    def features(self) -> FeatureConfig:
        return self.metadata.features

    @property
    def lead(self) -> int:
        return lead_samples(self.features, self.metadata.phases)

    def vectors(self, mel: np.ndarray) -> np.ndarray:
        """Mel frames (frames, n_mels), or a batch of equal length (batch, frames, n_mels) ->
        every vector of the embedding stage, one every embedding_step // phases frames from
        the first: (n, 96), or (batch, n, 96). One pass: the network's time convolutions are
        shared by all of them."""
        f = self.features
        step = f.embedding_step // self.metadata.phases
        batch = mel[None] if mel.ndim == 2 else mel
        if batch.shape[1] < f.embedding_frames:
            return np.zeros((*mel.shape[:-2], 0, 96), dtype=np.float32)
        frames = f.embedding_frames + step * ((batch.shape[1] - f.embedding_frames) // step)
        out = self.embedding_stage(np.ascontiguousarray(batch[:, :frames, :, None]))
        return out[0] if mel.ndim == 2 else out

    def embeddings(self, mel: np.ndarray) -> np.ndarray:
        """Mel frames -> the embeddings on the 80 ms grid from the first frame (n, 96)."""
        return self.vectors(mel)[:: self.metadata.phases]

    def head_probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """The stage's vectors of a head window (`vectors` of window_mel with `lead`), or of
        a batch of them -> the head on each grid of each, averaged: one pass for all."""
        f, phases = self.features, self.metadata.phases
        inputs = np.stack(head_inputs(vectors, phases, f), axis=-3).reshape(
            -1, f.head_embeddings, vectors.shape[-1])
        return self.head(inputs).mean(axis=0)

    def classify_utterance(self, waveform: np.ndarray) -> Prediction:
        """A mono waveform at the model rate holding one word (silence around it is fine).
        Raises ValueError on non-finite samples (features.check_waveform)."""
        x = check_waveform(waveform)
        return self.classify_word(trim_silence(x, self.features), noise_floor(x, self.features))

    def word_probabilities(self, word: np.ndarray, floor: float) -> np.ndarray:
        """One trimmed word padded at `floor` dBFS -> label probabilities: the mean over the
        model's tape speeds, every speed's window embedded in one batch."""
        f = self.features
        mels = np.stack([log_mel(utterance_window(word, f, None, floor, self.lead, speed), f)
                         for speed in self.metadata.speeds])
        return self.head_probabilities(self.vectors(mels))

    def classify_word(self, word: np.ndarray, floor: float) -> Prediction:
        """One word already checked and trimmed (pipeline.words), padded at its room's
        noise `floor` in dBFS: the path of classify_utterance without doing that again."""
        return decide(self.word_probabilities(word, floor), self.metadata.labels,
                      self.rejection)


    @property
    def string_min_confidence(self) -> float:
        return float(self.metadata.raw["strings"]["min_confidence"])

    def read_string(self, speech: np.ndarray, floor: float) -> StringReading | None:
        """Trimmed speech of any length -> what the strings stage reads in it (None when the
        model has no strings stage)."""
        if self.strings is None:
            return None
        audio = string_audio(speech, self.features, floor)
        return StringReading.of(self.strings(self.embeddings(log_mel(audio, self.features))
                                             [None])[0])


@dataclass(frozen=True)
class StringReading:
    """The strings stage's greedy CTC reading: runs of one non-blank token, in order."""

    tokens: tuple[str, ...]  # "0"-"9" or "unknown"
    confidences: tuple[float, ...]  # each token's highest probability over its run
    positions: tuple[int, ...]  # the vector where each token peaks

    @classmethod
    def of(cls, probs: np.ndarray) -> StringReading:
        best = np.argmax(probs, axis=1)
        tokens, confidences, positions = [], [], []
        previous = 0
        for t, k in enumerate(best):
            if k != 0 and k != previous:
                tokens.append(STRING_TOKENS[k])
                confidences.append(float(probs[t, k]))
                positions.append(t)
            elif k != 0 and probs[t, k] > confidences[-1]:
                confidences[-1], positions[-1] = float(probs[t, k]), t
            previous = k
        return cls(tuple(tokens), tuple(confidences), tuple(positions))

    def digits(self, min_confidence: float) -> list[int | None]:
        """Each token as a digit, None where it is no digit or below min_confidence."""
        return [int(t) if t != UNKNOWN_LABEL and c >= min_confidence else None
                for t, c in zip(self.tokens, self.confidences, strict=True)]


def decide(probs: np.ndarray, labels: tuple[str, ...], rule: RejectionRule) -> Prediction:
    """One prediction under the rejection rule that training's calibration also uses."""
    best = int(np.argmax(probs))
    digit = int(rule.digits(probs, labels)[0])
    return Prediction(digit=None if digit < 0 else digit, label=labels[best],
                      confidence=float(probs[best]), probabilities=probs)
