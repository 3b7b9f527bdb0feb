"""results.json -> BENCHMARKS.md (tables: a digitd row, a pocketsphinx row, their ratio) and
PNG plots beside the results."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from digitd.daemon.config import BY_KEY

NAMES = ("digitd", "pocketsphinx")
WHOLE = "digitd whole utterance (features + both stages)"  # bench.run.costs' key


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} ms"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def isolated_accuracy(iso: dict, name: str) -> dict[str, float]:
    return {s: float(np.mean(np.array(v["predicted"]) == np.array(v["truth"])))
            for s, v in iso[name].items()}


def confusion(iso: dict, name: str) -> np.ndarray:
    matrix = np.zeros((10, 11), dtype=int)
    for v in iso[name].values():
        for t, p in zip(v["truth"], v["predicted"], strict=True):
            matrix[t, p if p >= 0 else 10] += 1
    return matrix


def _save(fig, out: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out / name, dpi=90)
    plt.close(fig)
    return name


def plot_confusions(iso: dict, out: Path) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, name in zip(axes, NAMES, strict=True):
        m = confusion(iso, name)
        ax.imshow(m / np.maximum(1, m.sum(1, keepdims=True)), cmap="Blues", vmin=0, vmax=1)
        for i in range(10):
            for j in range(11):
                if m[i, j]:
                    ax.text(j, i, m[i, j], ha="center", va="center", fontsize=7,
                            color="white" if m[i, j] > m[i].sum() / 2 else "black")
        ax.set_xticks(range(11), [*map(str, range(10)), "rej."])
        ax.set_yticks(range(10))
        ax.set_xlabel("recognized")
        ax.set_ylabel("spoken")
        ax.set_title(f"{name}: isolated digits, held-out speakers")
    return _save(fig, out, "confusion.png")


def plot_speakers(iso: dict, out: Path) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    speakers = list(iso["digitd"])
    for k, name in enumerate(NAMES):
        acc = isolated_accuracy(iso, name)
        ax.bar(np.arange(len(speakers)) + (k - 0.5) * 0.4, [100 * acc[s] for s in speakers],
               width=0.4, label=name)
    ax.set_xticks(range(len(speakers)), speakers)
    ax.set_ylabel("accuracy on the held-out speaker, %")
    ax.set_ylim(0, 100)
    ax.legend()
    return _save(fig, out, "speakers.png")


def plot_streaming(results: dict, out: Path) -> str:
    import matplotlib.pyplot as plt

    cfg = results["config"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for name, style in zip(NAMES, ("-", "--"), strict=True):
        for kind in cfg["noises"]:
            rows = [results["streaming"][name][f"{kind} {snr} dB"] for snr in cfg["snrs"]]
            axes[0].plot(cfg["snrs"], [100 * r["digit_error_rate"] for r in rows], style,
                         marker="o", label=f"{name}, {kind}")
        rows = [results["streaming"][name][f"all {snr} dB"] for snr in cfg["snrs"]]
        axes[1].plot(cfg["snrs"], [r["latency_ms_p95"] or np.nan for r in rows], style,
                     marker="o", label=f"{name} p95")
        axes[1].plot(cfg["snrs"], [r["latency_ms_p50"] or np.nan for r in rows], style,
                     marker="x", label=f"{name} p50")
    axes[0].set_xlabel("SNR, dB")
    axes[0].set_ylabel("digit error rate, %")
    axes[1].set_xlabel("SNR, dB")
    axes[1].set_ylabel("end of word -> digit, ms (log scale)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.invert_xaxis()
        ax.legend(fontsize=7)
    return _save(fig, out, "streaming.png")


def plots(results: dict, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    return {"confusion": plot_confusions(results["isolated"], out),
            "speakers": plot_speakers(results["isolated"], out),
            "streaming": plot_streaming(results, out)}


def headline(results: dict) -> list[list[str]]:
    """The few numbers that matter most, digitd vs pocketsphinx."""
    iso = {n: isolated_accuracy(results["isolated"], n) for n in NAMES}
    snr = 20 if 20 in results["config"]["snrs"] else results["config"]["snrs"][0]
    stream = {n: results["streaming"][n][f"all {snr} dB"] for n in NAMES}
    fa = {n: results["unseen_voices"][n]["word_false_accept"] for n in NAMES}
    proc = results["cost"]["process"]
    rows = []

    def row(label, a, b, fmt):
        rows.append([label, fmt(a), fmt(b), ratio(a, b)])

    row("isolated digits, held-out speakers (mean)", np.mean(list(iso["digitd"].values())),
        np.mean(list(iso["pocketsphinx"].values())), pct)
    row("worst held-out speaker", min(iso["digitd"].values()),
        min(iso["pocketsphinx"].values()), pct)
    row(f"digit error rate, streams at {snr} dB SNR", stream["digitd"]["digit_error_rate"],
        stream["pocketsphinx"]["digit_error_rate"], pct)
    row("end of word -> digit, p95", stream["digitd"]["latency_ms_p95"],
        stream["pocketsphinx"]["latency_ms_p95"], ms)
    row("non-digit words taken for digits", fa["digitd"], fa["pocketsphinx"], pct)
    if results.get("recorded_voices", {}).get("klettres_clips"):
        rv = results["recorded_voices"]
        row("recorded people's letters and syllables taken for digits",
            letters_taken(rv, "digitd"), letters_taken(rv, "pocketsphinx"), pct)
    row("CPU seconds per hour of audio", proc["digitd"]["cpu_seconds_per_audio_hour"],
        proc["pocketsphinx"]["cpu_seconds_per_audio_hour"], lambda x: f"{x:.0f} s")
    row("peak RSS", proc["digitd"]["peak_rss_mb"], proc["pocketsphinx"]["peak_rss_mb"],
        lambda x: f"{x:.0f} MB")
    return rows


def letters_taken(recorded: dict, name: str) -> float:
    """KLettres clips taken for a digit, each language weighing the same."""
    return float(np.mean(list(recorded[name]["klettres_taken"].values())))


def recorded_section(rv: dict) -> list[str]:
    parts = ["## Recorded voices outside FSDD", ""]
    if not rv["allison_digits"] and not rv["klettres_clips"]:
        return parts + ["Not measured: neither asterisk-core-sounds-en-wav nor klettres-data "
                        "is installed (`scripts/install-system-packages`).", ""]
    n_letters = sum(rv["klettres_clips"].values())
    parts += ["Real people, not synthesizers, recorded outside FSDD, each clip one utterance, "
              "recognized by the shipped model (no training run reads any of them): Allison "
              "Smith's English Asterisk prompts (a woman: her ten digits, one take each, and "
              f"{rv['allison_words']} one-word prompts that are no digit: letters, the phonetic "
              "alphabet, teens, days, months...), and KLettres' recordings of "
              f"{len(rv['klettres_clips'])} languages' letters and syllables "
              f"({n_letters} clips; the letter O, said for zero, left out), each language "
              "read by its own native speakers. Letters and syllables are harder than most "
              "words: short, and many share a digit's vowel (\"E\", \"nine\"'s \"I\").", ""]
    rows = [["Allison Smith's digits right",
             *[f"{rv[n]['allison_digits_right']} of {rv['allison_digits']}" for n in NAMES],
             "-"]]
    if rv["allison_words"]:
        rows.append(["her non-digit words taken for digits",
                     *[pct(rv[n]["allison_words_taken"]) for n in NAMES],
                     ratio(rv["digitd"]["allison_words_taken"],
                           rv["pocketsphinx"]["allison_words_taken"])])
    if rv["klettres_clips"]:
        rows.append(["KLettres letters and syllables taken (languages weigh the same)",
                     *[pct(letters_taken(rv, n)) for n in NAMES],
                     ratio(letters_taken(rv, "digitd"), letters_taken(rv, "pocketsphinx"))])
        for language in ("en", "en_GB"):
            if language in rv["klettres_clips"]:
                rows.append([f"of them English ({language}) letters and syllables",
                             *[pct(rv[n]["klettres_taken"][language]) for n in NAMES],
                             "-"])
    parts += [table(["", "digitd", "pocketsphinx", "ratio"], rows), ""]
    if rv["klettres_clips"]:
        parts += ["KLettres clips taken for a digit by language, digitd / pocketsphinx:", "",
                  table(["language", "clips", "taken"],
                        [[k, str(v), f"{pct(rv['digitd']['klettres_taken'][k])} / "
                                     f"{pct(rv['pocketsphinx']['klettres_taken'][k])}"]
                         for k, v in rv["klettres_clips"].items()]), ""]
    return parts


def held_out_section(evaluation: dict | None) -> list[str]:
    """The training evaluation's held-out figures (reports/evaluation.json), digitd only:
    Speech Commands' real people by speaker-disjoint folds, and word types no fold heard."""
    if not evaluation:
        return []
    rows = []
    for name, row in evaluation["conditions"].items():
        if "right" in row:
            rows.append([name + ": digits right", pct(row["right"]), pct(row["argmax"]),
                         pct(row["rejected"]), str(row["n"])])
        else:
            rows.append([name + ": taken for a digit", pct(row["accepted"]), "-", "-",
                         str(row["n"])])
    return ["## Held-out speakers and words (training's evaluation)", "",
            f"From `digitd-train evaluate` ({evaluation['folds']} folds, each holding out one "
            "FSDD speaker, a share of the Speech Commands speakers and TTS voices, and a "
            "share of the non-digit word types; int8, as `digitd recognize --whole`). "
            f"Rule: {evaluation['rule']['rule']}.", "",
            table(["", "with rejection", "arg-max", "rejected", "clips"], rows), "",
            *trade_tables(evaluation)]


TRADE_COLUMNS = {"FSDD": "FSDD", "Speech Commands": "Speech Commands",
                 "unseen TTS voices": "unseen TTS voices",
                 "real people, held-out word types": "real people's words (held-out types)",
                 "digit-like words, held-out types, unseen voices":
                     "digit-like words (held-out types)"}


def trade_tables(evaluation: dict) -> list[str]:
    """What each rejection limit trades, the other kept at the model's: digits right /
    non-digit clips taken for a digit, held out."""
    rule, rows = evaluation["rule"], evaluation.get("trade", [])
    if not rows:
        return []
    out = ["What `--min-confidence` and `--max-unknown` trade, the other kept at the model's "
           "(digits right; non-digit clips taken for a digit):", ""]
    for key, other in (("min_confidence", "max_unknown"), ("max_unknown", "min_confidence")):
        lines, seen = [], set()
        for row in sorted(rows, key=lambda r: r[key]):
            if abs(row[other] - rule[other]) > 1e-9 or round(row[key], 6) in seen:
                continue
            seen.add(round(row[key], 6))
            mine = abs(row[key] - rule[key]) < 1e-9
            cells = [pct(row[k]) for k in TRADE_COLUMNS]
            label = f"{row[key]:g}" + (" (the model's)" if mine else "")
            lines.append([f"**{c}**" for c in [label, *cells]] if mine else [label, *cells])
        out += [table([f"`--{key.replace('_', '-')}`", *TRADE_COLUMNS.values()], lines), ""]
    return out


# Published figures the Raspberry Pi estimate scales from (an estimate, not a measurement):
PI4_MOBILENET_MS = 87.0  # MobileNet v1 1.0_224 on a Pi 4's CPU with TFLite, per TildAlice,
PI4_SOURCE = "https://dev.to/tildalice/mobilenet-vs-efficientnet-lite-pi-4-first-model-38ms-gap-3l84"
MOBILENET_V1_MACS = 569e6  # Howard et al. 2017, table 8
PI5_SPEEDUP = (2.0, 3.0)  # Raspberry Pi Ltd: "a 2-3x increase in CPU performance" over Pi 4
PI5_SOURCE = "https://www.raspberrypi.com/news/introducing-raspberry-pi-5/"


def arm64_section(path: Path, results: dict) -> list[str]:
    """The last `scripts/check-arm64` run, and what a Raspberry Pi would spend."""
    if not path.is_file():
        return []
    from digitd.daemon.model import ModelMetadata, default_model_path, lead_samples

    from bench.cost import embedding_macs

    r = json.loads(path.read_text())
    model = ModelMetadata.load(default_model_path())
    f = model.features
    frames = f.window_frames + lead_samples(f, model.phases) // f.hop_length
    passes = len(model.speeds)  # one embedding pass per tape speed
    macs = embedding_macs(frames, f.n_mels, model.phases)
    pi4 = passes * macs / MOBILENET_V1_MACS * PI4_MOBILENET_MS
    measured = results["cost"]["per_utterance_ms"][WHOLE]
    rows = [[name, wheel] for name, wheel in r["wheels"].items()]
    return ["## Raspberry Pi (arm64)", "",
            f"`scripts/check-arm64` (in CI) ran the README's Raspberry Pi steps in Debian "
            f"{r['debian']}: `digitd demo` printed {' '.join(r['demo'])}; `recognize --whole` "
            f"got {r['fsdd_right']} of {r['fsdd_whole_files']} FSDD files right; "
            "`systemd-analyze verify` of the unit in the root: "
            f"{'clean' if not r['systemd_analyze_verify'] else r['systemd_analyze_verify']}. "
            + ("On the emulated CPU LiteRT's XNNPACK kernels computed the model wrongly: "
               "digitd's load-time check (both stages' outputs on a known input, stored with "
               "the model) caught it and switched to LiteRT's built-in kernels. Those round "
               "int8 differently, on x86 too, and cost some confidence"
               + (": there the sample's \"seven\" fell under the rule and was rejected"
                  if "7" not in r["demo"] else "")
               + ". The evaluation measures the XNNPACK path. Whether XNNPACK errs on a real "
               "Pi is not known here. " if r.get("xnnpack_fallback") else "")
            + "Emulated timings mean nothing, so none are given. The wheels pip chose there:",
            "", table(["package", "wheel"], rows), "",
            f"**Estimate, not a measurement**: one utterance is {passes} embedding "
            f"pass(es) (one per tape speed) over {frames} mel frames, {macs / 1e6:.0f} M "
            "multiply-accumulates each (the head adds under 1 M). MobileNet v1 1.0_224 "
            "(569 M) takes about "
            f"{PI4_MOBILENET_MS:.0f} ms on a Pi 4's CPU with TFLite ([source]({PI4_SOURCE})), "
            f"so about {pi4:.0f} ms an utterance on a Pi 4 and {pi4 / PI5_SPEEDUP[1]:.0f}-"
            f"{pi4 / PI5_SPEEDUP[0]:.0f} ms on a Pi 5 (2-3x a Pi 4's CPU, [source]"
            f"({PI5_SOURCE})); measured here, {measured:.1f} ms. A quiet room costs only the "
            "VAD.", ""]


def soak_section(path: Path) -> list[str]:
    """The last `python -m bench.soak` run, when there is one."""
    if not path.is_file():
        return []
    r = json.loads(path.read_text())
    rows = [["digits played", str(r["digits_played"])],
            ["right / wrong / missed / false", f"{r['right']} / {r['wrong']} / {r['missed']} / "
                                               f"{r['false']}"],
            ["MQTT delivered / dropped as stale / late / lost",
             f"{r['mqtt_delivered']} / {r['mqtt_dropped_stale']} / {r['mqtt_late']} / "
             f"{r['mqtt_lost']}"],
            ["RSS at start / end", f"{r['rss_mb_start']:.0f} MB / {r['rss_mb_end']:.0f} MB"],
            ["CPU per audio hour", f"{r['cpu_s_per_audio_hour']:.0f} s"],
            ["a traceback in the log", "yes" if r["traceback_in_log"] else "no"]]
    return ["## Soak", "",
            f"`python -m bench.soak --minutes {r['minutes']:g}`: `digitd listen` on a real "
            "PulseAudio device publishing to a real Mosquitto, FSDD digits with noise bursts "
            "and tones between them played in real time; the microphone unplugged for 5 s "
            f"before chunk {r['unplugged_at_chunk'] + 1} and the broker killed (SIGKILL) "
            f"during chunk {r['broker_killed_at_chunk'] + 1}, restarted 8 s later. A digit "
            "older than the daemon's MQTT max age (10 s) is dropped by design, never "
            "published late.", "", table(["", ""], rows), ""]


def isolated_section(results: dict, files: dict[str, str], rel: str) -> list[str]:
    """Isolated digits of FSDD's speakers, each by the fold that never heard them."""
    iso = {n: isolated_accuracy(results["isolated"], n) for n in NAMES}
    parts: list[str] = []
    parts += ["## Isolated digits, unseen speakers", ""]
    if results["fold_models"]:
        parts.append("Each FSDD speaker is recognized by the int8 model of the "
                     "fold that never heard them (`reports/folds/`, from "
                     "`digitd-train evaluate`). A rejected digit counts as an error.")
    else:
        parts.append("**No fold models were found, so the shipped model stands in: it "
                     "has heard these speakers, and these numbers do not measure "
                     "generalization.** Run `digitd-train evaluate` first.")
    rows = [[s, pct(iso["digitd"][s]), pct(iso["pocketsphinx"][s]),
             ratio(iso["digitd"][s], iso["pocketsphinx"][s])] for s in iso["digitd"]]
    means = [float(np.mean(list(iso[n].values()))) for n in NAMES]
    rows.append(["**mean**", pct(means[0]), pct(means[1]), ratio(*means)])
    parts += ["", table(["held-out speaker", "digitd", "pocketsphinx", "ratio"], rows), "",
              f"![confusion matrices]({rel}/{files['confusion']})",
              f"![per speaker]({rel}/{files['speakers']})", ""]

    return parts


def voices_section(results: dict) -> list[str]:
    """The model card's held-out figures, unseen TTS voices, recorded voices."""
    parts: list[str] = []
    parts += held_out_section(results.get("evaluation"))
    uv = results["unseen_voices"]
    parts += ["## Voices no training used", "",
              f"{uv['voices']} espeak-ng voice variants (women's and men's, four accents) that "
              f"training never used: {uv['digit_clips']} digit clips and {uv['word_clips']} "
              "clips of words that are not digits (words no training run heard), each clip one "
              "utterance.",
              "", table(["", "digitd", "pocketsphinx", "ratio"], [
                  ["digits right", pct(uv["digitd"]["digit_accuracy"]),
                   pct(uv["pocketsphinx"]["digit_accuracy"]),
                   ratio(uv["digitd"]["digit_accuracy"], uv["pocketsphinx"]["digit_accuracy"])],
                  ["digits rejected", pct(uv["digitd"]["digit_rejected"]),
                   pct(uv["pocketsphinx"]["digit_rejected"]), "-"],
                  ["non-digit words taken for digits", pct(uv["digitd"]["word_false_accept"]),
                   pct(uv["pocketsphinx"]["word_false_accept"]),
                   ratio(uv["digitd"]["word_false_accept"],
                         uv["pocketsphinx"]["word_false_accept"])]]), ""]

    if "recorded_voices" in results:
        parts += recorded_section(results["recorded_voices"])

    return parts


def streaming_section(results: dict, files: dict[str, str], rel: str) -> list[str]:
    """Streams of held-out speakers' digits in noise, end to end."""
    cfg = results["config"]
    parts: list[str] = []
    st = results["streaming"]
    parts += ["## Streaming", "",
              f"For each held-out speaker, noise kind ({', '.join(cfg['noises'])}) and SNR, a "
              f"stream of {cfg['stream_digits']} of that speaker's digits with 0.3-1.5 s "
              f"pauses, each word levelled to the SNR over the noise within "
              f"+-{cfg['stream_level_spread_db']:g} dB (FSDD's "
              "takes of one speaker differ by up to 30 dB in level), recognized end to end "
              "(digitd: webrtcvad segmenter + the fold model that never heard the speaker; "
              f"{st['audio_hours'] * 60:.0f} min of audio per recognizer). Truth "
              f"times: `{rel}/streams/*.csv`. As TensorFlow's test_streaming_accuracy: each "
              "digit emitted is matched to a spoken word near it (right or wrong), or is a "
              "false positive; unmatched words are missed. Digit error rate is the edit "
              "distance between the emitted and spoken sequences over the words spoken. "
              "Latency runs from the true end of the word to the digit's emission. Babble is "
              "eight talkers at once, played backwards, drawn from the voices training never "
              "used (their non-digit words and phrases).", ""]
    rows = []
    for snr in cfg["snrs"]:
        for name in NAMES:
            r = st[name][f"all {snr} dB"]
            rows.append([f"{snr} dB", name, pct(r["digit_error_rate"]), pct(r["matched"]),
                         pct(r["wrong"]), pct(r["missed"]), str(r["false_positives"]),
                         ms(r["latency_ms_p50"]), ms(r["latency_ms_p95"])])
    parts += [table(["SNR", "", "digit error rate", "matched", "wrong", "missed",
                     "false positives", "latency p50", "p95"], rows), ""]
    rows = [[kind] + [f"{pct(st['digitd'][f'{kind} {snr} dB']['digit_error_rate'])} / "
                      f"{pct(st['pocketsphinx'][f'{kind} {snr} dB']['digit_error_rate'])}"
                      for snr in cfg["snrs"]] for kind in cfg["noises"]]
    parts += ["Digit error rate by noise kind, digitd / pocketsphinx:", "",
              table(["noise", *[f"{s} dB" for s in cfg["snrs"]]], rows), "",
              f"![streaming]({rel}/{files['streaming']})", ""]

    return parts


def strings_section(results: dict) -> list[str]:
    """Numbers said by voices no training heard, with and without pauses."""
    if "strings" not in results:
        return []
    st = results["strings"]
    names = [n for n in ("digitd", "digitd, one digit per word", "pocketsphinx") if n in st]
    parts = ["## Digit strings", "",
             f"Numbers of 3-6 digits, {st['per_cell']} per source, gap and SNR, each its own "
             "short stream (0.8 s of pink noise, the words, 1.6 s of noise), through "
             "`--numbers` (1 s number gap). Sources: Speech Commands "
             "speakers the strings stage never trained on (a string mixes several of them), "
             "the unseen TTS voices (their digits joined, and \"fluent\": the voice says the "
             "whole string at once) and Allison Smith's recorded digits. A string is right "
             "when exactly one number came out and it is what was said; digit error rate is "
             "the edit distance of all digits that came out; latency runs from the end of "
             "the last word to the number line. \"one digit per word\" is digitd without "
             "its strings stage; pocketsphinx decodes with a JSGF grammar of digit strings.",
             ""]
    rows = []
    for name in names:
        for key in ("gaps 0-150 ms", "all"):
            r = st[name][key]
            rows.append([name, key, pct(r["strings_right"]), pct(r["digit_error_rate"]),
                         ms(r["latency_p50_ms"]), ms(r["latency_p95_ms"]),
                         f"{100 * st['cpu_share'][name]:.2f}%"])
    parts += [table(["", "strings", "right", "digit error rate", "latency p50", "p95",
                     "CPU"], rows), ""]
    cells = list(st["digitd"]["cells"])
    parts += ["Strings right by source, gap and SNR (" + " / ".join(names) + "):", "",
              table(["source", "gap", "SNR", *names],
                    [[*cell.split(" | ")[:2], cell.split(" | ")[2] + " dB",
                      *[pct(st[n]["cells"][cell]["strings_right"]) for n in names]]
                     for cell in cells]), ""]
    h = st["harm"]
    variants = [n for n in ("digitd", "digitd, one digit per word") if n in h]
    parts += [f"What the strings stage must not spoil: {h['digits']} single digits with "
              "0.3-1.5 s pauses (the same voices, 20 dB pink noise) and "
              f"{h['talk_seconds'] / 60:.1f} min of talk with no digit:", "",
              table(["", "digit error rate", "wrong", "missed", "false positives",
                     "digits per hour of talk"],
                    [[n, pct(h[n]["digit_error_rate"]), pct(h[n]["wrong"]),
                      pct(h[n]["missed"]), str(h[n]["false_positives"]),
                      f"{h[n]['talk_digits_per_hour']:.0f}"] for n in variants]), ""]
    return parts


def false_accepts_section(results: dict) -> list[str]:
    """Digits emitted per hour of audio that holds none."""
    parts: list[str] = []
    fa = results["false_accepts"]
    minutes = fa["seconds_per_kind"] / 60
    parts += ["## False accepts", "",
              f"Digits emitted per hour of audio that holds no digit ({minutes:.1f} min of "
              "each kind, streamed): noise bursts and clicks; music-like tones and chords; "
              "speech with no digit in it (words and phrases by the unseen voices).", "",
              table(["per hour of", "digitd", "pocketsphinx", "ratio"],
                    [[kind, f"{fa['digitd'][kind]:.0f}", f"{fa['pocketsphinx'][kind]:.0f}",
                      ratio(fa["digitd"][kind], fa["pocketsphinx"][kind])]
                     for kind in ("noise", "tones", "speech")]), ""]

    return parts


def cost_section(results: dict) -> list[str]:
    """CPU, memory, latency and size, and the daemon itself."""
    st = results["streaming"]
    parts: list[str] = []
    c = results["cost"]
    proc = c["process"]
    per = c["per_utterance_ms"]
    ours_bytes = sum(v for k, v in c["model_bytes"].items() if k.startswith("digitd"))
    rows = [["CPU seconds per hour of audio (in-process, the streams above)",
             f"{st['cpu_seconds_per_audio_hour']['digitd']:.0f} s",
             f"{st['cpu_seconds_per_audio_hour']['pocketsphinx']:.0f} s",
             ratio(st["cpu_seconds_per_audio_hour"]["digitd"],
                   st["cpu_seconds_per_audio_hour"]["pocketsphinx"])],
            ["CPU seconds per hour of audio (a process, start-up included)",
             f"{proc['digitd']['cpu_seconds_per_audio_hour']:.0f} s",
             f"{proc['pocketsphinx']['cpu_seconds_per_audio_hour']:.0f} s",
             ratio(proc["digitd"]["cpu_seconds_per_audio_hour"],
                   proc["pocketsphinx"]["cpu_seconds_per_audio_hour"])],
            ["peak RSS of that process", f"{proc['digitd']['peak_rss_mb']:.0f} MB",
             f"{proc['pocketsphinx']['peak_rss_mb']:.0f} MB",
             ratio(proc["digitd"]["peak_rss_mb"], proc["pocketsphinx"]["peak_rss_mb"])],
            ["start-up to ready", f"{proc['digitd']['ready_s']:.2f} s",
             f"{proc['pocketsphinx']['ready_s']:.2f} s",
             ratio(proc["digitd"]["ready_s"], proc["pocketsphinx"]["ready_s"])],
            ["one utterance (features + both stages at each tape speed / decode)",
             f"{per[WHOLE]:.2f} ms", f"{per['pocketsphinx decode']:.2f} ms",
             ratio(per[WHOLE], per["pocketsphinx decode"])],
            ["model on disk", f"{ours_bytes / 1024:.0f} KB",
             f"{c['model_bytes']['pocketsphinx en-us'] / 2**20:.1f} MB",
             ratio(ours_bytes, c["model_bytes"]["pocketsphinx en-us"])]]
    parts += ["## Cost", "", table(["", "digitd", "pocketsphinx", "ratio"], rows), ""]
    stage_rows = [[k.removeprefix("digitd "), f"{v:.3f} ms"] for k, v in per.items()
                  if k.startswith("digitd") and k != WHOLE]
    stage_rows += [[k.removeprefix("digitd ") + " on disk", f"{v / 1024:.0f} KB"]
                   for k, v in c["model_bytes"].items() if k.startswith("digitd")]
    parts += ["digitd's parts, one thread (LiteRT, XNNPACK):", "",
              table(["part", "time / size"], stage_rows), ""]
    parts += quiet_and_daemon_lines(c)
    parts += wyoming_and_memory_lines(c, proc)
    return parts


def quiet_and_daemon_lines(c: dict) -> list[str]:
    """digitd's own budgets, nothing to compare (the peer is not run on them): a quiet room
    through `digitd recognize`, and the daemon on a real audio device."""
    parts: list[str] = []
    quiet = c.get("quiet_room")
    if quiet:
        parts += [f"A quiet room through `digitd recognize` ({quiet['seconds'] / 60:.0f} min "
                  f"of pink noise at {quiet['level_dbfs']:.0f} dBFS, start-up included): "
                  f"{100 * quiet['cpu_share']:.2f}% of a core, {quiet['digits_printed']} "
                  "digits printed.", ""]
    d = c["daemon"]
    idle = d.get("ready_idle_sink_s")
    parts += ["The daemon itself (`digitd listen` on a PulseAudio null-sink monitor, a real "
              "PortAudio device, kept running by a player of silence as a microphone's clock "
              f"always runs): model loaded and the input stream open {d['stream_open_s']:.2f} s "
              "after start; the first audio processed, when digitd tells systemd READY=1, "
              f"{d['ready_s']:.2f} s after start"
              + (f" ({idle:.2f} s on an idle null sink, which renders its first monitor block "
                 "~2 s after a recorder connects)" if idle is not None else "")
              + f"; {100 * d['cpu_share_silence']:.1f}% of one core while hearing silence "
              f"(microphone blocks of {BY_KEY['audio.block_ms'].default} ms"
              + (f"; a bare PortAudio stream on the same device, its blocks only queued, "
                 f"{100 * d['cpu_share_bare_stream']:.1f}%"
                 if d.get("cpu_share_bare_stream") is not None else "")
              + "), peak RSS "
              f"{d['peak_rss_mb']:.0f} MB"
              + (f" ({d['peak_rss_after_device_loss_mb']:.0f} MB after its device was "
                 "unloaded for a few rescans and loaded again, as a microphone pulled out and "
                 "plugged back in)" if d.get("peak_rss_after_device_loss_mb") else "")
              + f", heavy modules imported: {', '.join(d['heavy_modules']) or 'none'}"
              + ("; **it did not stop cleanly within 10 s of SIGTERM** (killed)."
                 if d.get("stop_after_sigterm_s", 0) is None else "."), ""]
    return parts


def wyoming_and_memory_lines(c: dict, proc: dict) -> list[str]:
    """The Wyoming server beside the streaming recognizer, and where the RSS comes from."""
    parts: list[str] = []
    d = c["daemon"]
    if "wyoming" in c:
        w = c["wyoming"]
        parts += [f"`digitd wyoming` (Home Assistant's speech-to-text), {w['requests']} FSDD "
                  "digits of a held-in speaker sent one request each over loopback: transcript "
                  f"{w['latency_ms_p50']:.1f} ms after `audio-stop` at p50, "
                  f"{w['latency_ms_p95']:.1f} ms at p95; {w['right']:.0%} right; "
                  f"{w['cpu_seconds_per_audio_hour']:.0f} CPU seconds per audio hour (beside "
                  f"{proc['digitd']['cpu_seconds_per_audio_hour']:.0f} s for the same "
                  f"recognizer reading a stream); peak RSS {w['peak_rss_mb']:.0f} MB.", ""]
    if d.get("rss_mb_by_origin"):
        parts += ["Where the daemon's resident memory comes from:", "",
                  table(["origin", "MB"], [[k, f"{v:.1f}"] for k, v in sorted(
                      d["rss_mb_by_origin"].items(), key=lambda kv: -kv[1])]), ""]
    return parts


def write(results: dict, out: Path, markdown: Path) -> str:
    files = plots(results, out)
    rel = os.path.relpath(out, markdown.parent)
    cfg = results["config"]
    parts = ["# Benchmarks", "",
             "digitd and pocketsphinx 5 (PyPI, its bundled en-us model, a JSGF grammar of the "
             "ten digit words and its Endpointer) on exactly the same audio, in one run of "
             f"`python -m bench{' --quick' if cfg['quick'] else ''}"
             f"{' --reuse-peer' if 'peer_measured_in_s' in results else ''}` "
             f"({results['elapsed_s'] / 60:.1f} min on {os.cpu_count()} cores). "
             "Ratios are digitd / pocketsphinx. Timings come from a shared machine.", ""]
    if "peer_measured_in_s" in results:
        parts[-2] += (" This run measured digitd only (`--reuse-peer`): pocketsphinx's "
                      "figures come from an earlier run of the same configuration on the same "
                      f"audio ({results['peer_measured_in_s'] / 60:.1f} min with both), so "
                      "the two sides' timings were taken at different times.")
    if cfg["quick"]:
        parts += ["**Quick mode**: small samples for CI; the full run is `python -m bench`.", ""]
    parts += ["## Headline", "", table(["", "digitd", "pocketsphinx", "ratio"],
                                       headline(results)), ""]

    parts += isolated_section(results, files, rel)
    parts += voices_section(results)
    parts += streaming_section(results, files, rel)
    parts += false_accepts_section(results)
    parts += strings_section(results)
    parts += cost_section(results)
    parts += soak_section(out.parent / "soak" / "results.json")
    parts += arm64_section(out.parent / "arm64" / "results.json", results)
    text = "\n".join(parts)
    markdown.write_text(text)
    return text
