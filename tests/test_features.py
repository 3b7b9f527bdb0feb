"""The shared front end: equal to the speech embedding's own TFLite front end on real audio,
the Keras embedding equal to its TFLite file, sane on edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from digitd.daemon.audio import read_audio
from digitd.daemon.features import (
    FeatureConfig,
    log_mel,
    mel_filterbank,
    n_embeddings,
    pad_noise,
    trim_silence,
    utterance_window,
    window_mel,
)

CFG = FeatureConfig()
FSDD_FILES = ["0_george_0.wav", "3_jackson_12.wav", "7_lucas_40.wav", "9_yweweler_3.wav",
              "6_nicolas_8.wav", "4_theo_21.wav"]
SC_FILES = ["nine", "three", "happy", "stop", "zero", "left"]  # first clip of each word
# melspectrogram.tflite computes in float32, we partly in float64: its values (x / 10 + 2) span
# about -8..14, and the two agree to 1e-4 (seen: 1.4e-5).
TOLERANCE = 1e-4


def mel_windows(mel: np.ndarray) -> np.ndarray:
    """The embedding network's inputs in mel frames: 76 frames every 8, (n, 76, 32)."""
    view = np.lib.stride_tricks.sliding_window_view(mel, CFG.embedding_frames, axis=0)
    return view[:: CFG.embedding_step].transpose(0, 2, 1)


def real_clips(recordings, speech_commands) -> list[np.ndarray]:
    clips = [read_audio(recordings / name, CFG.sample_rate) for name in FSDD_FILES]
    for word in SC_FILES:
        first = sorted((speech_commands / word).glob("*.flac"))[0]
        clips.append(read_audio(first, CFG.sample_rate))
    return [c.astype(np.float64) for c in clips]


def reference_mel(x: np.ndarray) -> np.ndarray:
    """openWakeWord's front end as it runs it: 1760-sample calls every 1280 samples."""
    from ai_edge_litert import interpreter as litert
    from digitd.train.embedding import reference_path

    model = litert.Interpreter(model_path=str(reference_path("melspectrogram.tflite")))
    model.resize_tensor_input(0, [1, 1760])
    model.allocate_tensors()
    out = []
    for start in range(0, x.size - 1760 + 1, 1280):
        model.set_tensor(model.get_input_details()[0]["index"],
                         (x[start : start + 1760] * 32768).astype(np.float32)[None])
        model.invoke()
        out.append(model.get_tensor(model.get_output_details()[0]["index"])[0, 0] / 10 + 2)
    return np.concatenate(out)


def test_log_mel_equals_melspectrogram_tflite_on_real_audio(recordings, speech_commands):
    pytest.importorskip("pyopen_wakeword")
    for x in real_clips(recordings, speech_commands):
        x = np.concatenate([np.zeros(4000), x, np.zeros(4000)])  # digital silence too
        ref = reference_mel(x)
        ours = log_mel(x[: (ref.shape[0] // 8 - 1) * 1280 + 1760], CFG)
        assert ours.shape == ref.shape
        assert np.max(np.abs(ours - ref)) <= TOLERANCE


def test_keras_embedding_equals_embedding_model_tflite(recordings, speech_commands):
    pytest.importorskip("pyopen_wakeword")
    from ai_edge_litert import interpreter as litert
    from digitd.train.embedding import build_embedding, reference_path

    model = litert.Interpreter(model_path=str(reference_path()))
    model.allocate_tensors()
    keras_model = build_embedding()
    for x in real_clips(recordings, speech_commands)[::3]:
        mel = window_mel(x, CFG)
        ours = np.asarray(keras_model(mel[None, :, :, None]))[0]
        assert ours.shape == (CFG.head_embeddings, 96)
        for j, window in enumerate(mel_windows(mel)):
            model.set_tensor(model.get_input_details()[0]["index"], window[None, :, :, None])
            model.invoke()
            ref = model.get_tensor(model.get_output_details()[0]["index"]).reshape(96)
            # one long pass shares the time convolutions of 16 windows: float32-equal
            assert np.max(np.abs(ours[j] - ref)) <= 1e-3 * np.max(np.abs(ref))


def test_the_two_grid_embedding_is_the_embedding_40_ms_apart(recordings, speech_commands):
    pytest.importorskip("pyopen_wakeword")
    from digitd.train.embedding import build_embedding

    one, two = build_embedding(), build_embedding(phases=2)
    for x in real_clips(recordings, speech_commands)[::3]:
        mel = window_mel(x, CFG, lead=CFG.embedding_samples // 2)
        both = np.asarray(two(mel[None, :, :, None]))[0]
        assert both.shape == (2 * CFG.head_embeddings, 96)
        for phase, frames in ((0, mel), (1, mel[CFG.embedding_step // 2 :])):
            alone = np.asarray(one(frames[None, :, :, None]))[0]
            assert np.max(np.abs(both[phase::2] - alone)) <= 1e-5 * np.max(np.abs(alone))


def test_mel_filterbank_equals_librosa():
    librosa = pytest.importorskip("librosa")
    ours = mel_filterbank(CFG.sample_rate, CFG.n_fft, CFG.n_mels, CFG.fmin, CFG.fmax)
    ref = librosa.filters.mel(sr=CFG.sample_rate, n_fft=CFG.n_fft, n_mels=CFG.n_mels,
                              fmin=CFG.fmin, fmax=CFG.fmax, dtype=np.float64)
    assert np.max(np.abs(ours - ref)) <= 1e-12


def test_a_stream_in_pieces_gives_the_frames_of_the_whole(recordings):
    x = read_audio(recordings / "5_theo_3.wav", CFG.sample_rate).astype(np.float64)
    x = np.concatenate([np.zeros(9000), x, np.zeros(9000)])
    whole = log_mel(x, CFG)
    step = CFG.embedding_samples  # pieces start on the 8-frame grid
    pieces = [log_mel(x[k * step : k * step + 4 * step + CFG.n_fft - CFG.hop_length], CFG)
              for k in range(0, (x.size - 4 * step) // step, 4)]
    joined = np.concatenate(pieces)
    # equal but for float32 rounding (BLAS sums a block of frames in its own order)
    assert np.allclose(joined, whole[: joined.shape[0]], rtol=0, atol=1e-5)


def test_the_window_holds_the_classifier_input_exactly():
    assert CFG.window_frames == 196 and n_embeddings(CFG.window_frames, CFG) == 16
    mel = log_mel(np.zeros(CFG.window_samples), CFG)
    assert mel.shape == (CFG.window_frames, CFG.n_mels)
    assert mel_windows(mel).shape == (16, 76, 32)


def test_the_word_ends_tail_seconds_before_the_window_end(recordings):
    word = trim_silence(read_audio(recordings / "2_lucas_7.wav", 16000).astype(np.float64), CFG)
    pad = pad_noise(CFG.window_samples, CFG.pad_dbfs)
    assert abs(10 * np.log10(np.mean(pad**2)) - CFG.pad_dbfs) < 0.1  # a quiet microphone
    for tail in (0.0, 0.15, 0.4):
        window = utterance_window(word, CFG, tail)
        end = CFG.window_samples - int(round(tail * 16000))
        assert np.array_equal(window[end - word.size : end], word)
        assert np.array_equal(window[end:], pad[end:])
        assert np.array_equal(window[: end - word.size], pad[: end - word.size])


def test_a_lead_adds_padding_before_the_window_and_moves_nothing(recordings):
    word = trim_silence(read_audio(recordings / "2_lucas_7.wav", 16000).astype(np.float64), CFG)
    lead = CFG.embedding_samples // 2
    window = utterance_window(word, CFG, 0.15, lead=lead)
    assert window.size == CFG.window_samples + lead
    end = window.size - int(round(0.15 * 16000))
    assert np.array_equal(window[end - word.size : end], word)
    assert np.array_equal(window[: end - word.size], pad_noise(window.size, CFG.pad_dbfs)
                          [: end - word.size])


def test_a_long_clip_keeps_its_word(recordings):
    word = read_audio(recordings / "3_theo_5.wav", CFG.sample_rate)
    rng = np.random.default_rng(0)
    long = rng.normal(size=6 * CFG.sample_rate) * 1e-3
    start = 4 * CFG.sample_rate
    long[start : start + word.size] += word
    window = utterance_window(long, CFG)
    assert window.size == CFG.window_samples
    assert np.sum(window**2) >= 0.99 * np.sum(word**2)


@pytest.mark.parametrize("n", [1, 10, 511, 512, 513])
def test_very_short_input(n):
    rng = np.random.default_rng(n)
    mel = window_mel(rng.normal(size=n) * 0.1, CFG)
    assert mel.shape == (CFG.window_frames, CFG.n_mels) and np.all(np.isfinite(mel))


def test_clipped_and_hot_input_stays_finite(recordings):
    wave = read_audio(recordings / "8_george_9.wav", CFG.sample_rate)
    assert np.all(np.isfinite(window_mel(np.clip(wave * 50.0, -1.0, 1.0), CFG)))
    assert np.all(np.isfinite(window_mel(wave * 1000.0, CFG)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_a_clear_error(bad):
    wave = np.zeros(4000)
    wave[100] = bad
    with pytest.raises(ValueError, match="non-finite"):
        window_mel(wave, CFG)


def test_wrong_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="mono"):
        window_mel(np.zeros((100, 2)), CFG)
    with pytest.raises(ValueError, match="empty"):
        window_mel(np.zeros(0), CFG)


def test_trim_keeps_weak_onsets():
    rate = CFG.sample_rate
    rng = np.random.default_rng(1)
    fricative = rng.normal(size=rate // 10) * 0.01  # an 's' 30 dB under the vowel
    vowel = np.sin(2 * np.pi * 150 * np.arange(rate // 3) / rate) * 0.3
    wave = np.concatenate([np.zeros(rate // 2), fricative, vowel, np.zeros(rate // 2)])
    trimmed = trim_silence(wave, CFG)
    assert trimmed.size >= fricative.size + vowel.size
    assert trimmed.size <= fricative.size + vowel.size + 2 * 6 * CFG.trim_frame


def test_config_round_trip_and_unknown_keys():
    assert FeatureConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(ValueError, match="unknown"):
        FeatureConfig.from_dict({**CFG.to_dict(), "hop": 3})
    with pytest.raises(ValueError, match="missing"):
        FeatureConfig.from_dict({"n_fft": 256})


def test_a_clip_is_padded_at_its_own_noise_floor(recordings):
    from digitd.daemon.features import check_waveform, noise_floor

    rng = np.random.default_rng(4)
    word = read_audio(recordings / "7_jackson_7.wav", CFG.sample_rate).astype(np.float64)
    room = rng.normal(size=3 * CFG.sample_rate) * 10 ** (-65 / 20)  # a room at -65 dBFS
    clip = room.copy()
    clip[CFG.sample_rate : CFG.sample_rate + word.size] += word
    assert abs(noise_floor(clip, CFG) - (-65)) < 3
    assert noise_floor(np.zeros(8000), CFG) == CFG.pad_dbfs  # digital silence is no room
    assert noise_floor(rng.normal(size=8000) * 0.3, CFG) == CFG.pad_max_dbfs
    heard = check_waveform(clip)  # as every utterance is heard: its mean taken off
    window = utterance_window(trim_silence(heard, CFG), CFG, pad_dbfs=noise_floor(heard, CFG))
    head = window[: CFG.sample_rate // 2]  # padding only
    assert abs(10 * np.log10(np.mean(head**2)) - noise_floor(clip, CFG)) < 0.5
    assert np.array_equal(window_mel(clip, CFG), log_mel(window, CFG))


def test_a_stream_word_is_padded_at_the_room_it_was_heard_in(recordings, speech_commands):
    """A VAD segment is padded at the median 10 ms of the stream's last pre-roll before it:
    in a talking room the talk's level (its quietest 10 ms, a dip between syllables, lies far
    under it), in a quiet room the room's, never the words' (a segment is mostly words: its
    own median is theirs). A stream that opens on the word has no room before it: the
    segment's quietest 10 ms, as for a whole file, not the word's onset."""
    from digitd.daemon.features import frame_db, noise_floor
    from digitd.daemon.pipeline import room_level
    from digitd.daemon.segmenter import VadSegmenter

    def segments(stream: np.ndarray) -> list:
        segmenter = VadSegmenter(CFG.sample_rate)
        n = segmenter.frame_samples
        found = [segmenter.push(stream[i : i + n].astype(np.float32))
                 for i in range(0, stream.size - n + 1, n)]
        return [s for s in [*found, segmenter.flush()] if s is not None]

    def level(segment) -> float:
        return room_level(segment.samples, segment.room, preroll, CFG)

    rng = np.random.default_rng(5)
    preroll = VadSegmenter(CFG.sample_rate).preroll_samples
    word = np.concatenate([read_audio(recordings / name, CFG.sample_rate)  # "four two"
                           for name in ("4_nicolas_8.wav", "2_jackson_0.wav")]).astype(np.float64)
    word *= 10 ** (-15 / 20) / np.max(np.abs(word))
    onset = CFG.sample_rate  # a second of the room, the word, half a second more
    n = onset + word.size + CFG.sample_rate // 2
    talkers = [read_audio(p, CFG.sample_rate).astype(np.float64)
               for p in sorted((speech_commands / "happy").glob("*.flac"))[:6]]
    talk = sum(np.roll(np.resize(t, n), int(rng.integers(n))) for t in talkers)
    talk *= 10 ** (-40 / 20) / np.sqrt(np.mean(talk**2))  # a room talking at -40 dBFS
    quiet = rng.normal(size=n) * 10 ** (-65 / 20)  # a quiet room at -65 dBFS
    for room in (talk, quiet):
        stream = room.copy()
        stream[onset : onset + word.size] += word
        heard = max(segments(stream), key=lambda s: float(np.max(np.abs(s.samples))))
        assert heard.room.size == preroll
        expected = float(np.median(frame_db(room[onset - preroll : onset], CFG.trim_frame)))
        assert abs(level(heard) - expected) < 3
    assert noise_floor(talk, CFG) < float(np.median(frame_db(talk, CFG.trim_frame))) - 6
    opening = segments(np.concatenate([word, quiet[: CFG.sample_rate // 2]]))[0]
    assert opening.room.size < preroll
    assert level(opening) == noise_floor(opening.samples, CFG) < -60


def test_a_microphones_dc_offset_changes_nothing(recordings):
    """A clip with a DC offset is heard as the clip without: the offset would set the room's
    level (the padding) and put a step at the word's edges."""
    from digitd.daemon.model import DigitClassifier

    classifier = DigitClassifier()
    for name in ("7_jackson_7.wav", "2_nicolas_3.wav"):
        clip = read_audio(recordings / name, CFG.sample_rate)
        plain = classifier.classify_utterance(clip)
        for offset in (0.05, -0.2):
            shifted = classifier.classify_utterance(clip + np.float32(offset))
            assert shifted.digit == plain.digit
            np.testing.assert_allclose(shifted.probabilities, plain.probabilities, atol=1e-4)
        np.testing.assert_allclose(window_mel(clip + np.float32(0.05), CFG),
                                   window_mel(clip, CFG), atol=1e-4)


def test_a_streams_dc_offset_is_followed_and_taken_off(recordings):
    """DcRemover on a real stream with an offset that drifts: within a second the output's
    mean is the input's without it."""
    from digitd.daemon.features import DcRemover, check_waveform

    rate = CFG.sample_rate
    speech = np.concatenate([check_waveform(read_audio(recordings / n, rate)) for n in
                             ("7_jackson_7.wav", "2_nicolas_3.wav", "5_lucas_12.wav")] * 4)
    drift = 0.05 + 0.01 * np.arange(speech.size) / speech.size  # a warming microphone
    remover, frame = DcRemover(rate), rate // 100
    out = np.concatenate([remover((speech + drift)[i : i + frame].astype(np.float32))
                          for i in range(0, speech.size - frame + 1, frame)])
    settled = slice(rate, out.size)
    assert abs(np.mean(out[settled]) - np.mean(speech[settled])) < 2e-3
    assert np.max(np.abs(out[settled] - speech[settled])) < 0.01
    remover.reset()
    assert abs(float(np.mean(remover(np.full(frame, 0.3, dtype=np.float32))))) < 1e-6
