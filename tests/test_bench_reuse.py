"""`python -m bench --reuse-peer`: digitd measured afresh, pocketsphinx's figures carried over
from the last run of the same configuration, never from another one."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from bench import report
from bench.run import PEER, BenchConfig, main, previous_peer_results, reuse_peer_results

# the committed run behind BENCHMARKS.md: its figures, whichever way they were measured
FULL_RUN = Path(__file__).resolve().parent.parent / "reports" / "bench" / "results.json"


def committed_config() -> tuple[BenchConfig, BenchConfig]:
    """The committed run's configuration (full or quick), and the other one."""
    quick = json.loads(FULL_RUN.read_text())["config"]["quick"]
    return ((BenchConfig.quick_mode(), BenchConfig()) if quick
            else (BenchConfig(), BenchConfig.quick_mode()))


def without_peer(results: dict) -> dict:
    """What a --reuse-peer run measures: the same sections, digitd's figures only."""
    out = copy.deepcopy(results)
    for section in ("isolated", "unseen_voices", "streaming", "false_accepts"):
        del out[section][PEER]
    del out["streaming"]["cpu_seconds_per_audio_hour"][PEER]
    if PEER in out.get("strings", {}):
        del out["strings"][PEER], out["strings"]["cpu_share"][PEER]
    for table in ("model_bytes", "per_utterance_ms", "process"):
        for key in [k for k in out["cost"][table] if k.startswith(PEER)]:
            del out["cost"][table][key]
    out["unseen_voices"]["digitd"]["digit_accuracy"] = 0.123  # a new model's own figure
    out["elapsed_s"] = 600.0
    return out


def test_pocketsphinx_figures_are_carried_over_and_digitd_kept(tmp_path):
    previous = json.loads(FULL_RUN.read_text())
    previous.pop("peer_measured_in_s", None)  # as a run that decoded with both
    previous["elapsed_s"] = 3500.0
    merged = reuse_peer_results(without_peer(previous), previous)
    for section in ("isolated", "unseen_voices", "streaming", "false_accepts"):
        assert merged[section][PEER] == previous[section][PEER]
    assert merged["cost"]["process"][PEER] == previous["cost"]["process"][PEER]
    if "strings" in previous:
        assert merged["strings"][PEER] == previous["strings"][PEER]
    assert (merged["cost"]["per_utterance_ms"]["pocketsphinx decode"]
            == previous["cost"]["per_utterance_ms"]["pocketsphinx decode"])
    assert merged["unseen_voices"]["digitd"]["digit_accuracy"] == 0.123
    assert merged["peer_measured_in_s"] == previous["elapsed_s"]
    # reused again, it still names the run that measured pocketsphinx
    again = reuse_peer_results(without_peer(merged), merged)
    assert again["peer_measured_in_s"] == previous["elapsed_s"]
    text = report.write(merged, tmp_path, tmp_path / "BENCHMARKS.md")
    assert "`--reuse-peer`" in text and "12.3%" in text


def test_only_a_run_of_the_same_configuration_is_reused(tmp_path, capsys):
    results = tmp_path / "results.json"
    with pytest.raises(ValueError, match="no earlier results"):
        previous_peer_results(results, BenchConfig())
    results.write_text(FULL_RUN.read_text())
    same, other = committed_config()
    assert previous_peer_results(results, same)["config"] == json.loads(
        json.dumps(asdict(same)))
    with pytest.raises(ValueError, match="another configuration"):
        previous_peer_results(results, other)
    # from the command line: a clear error and status 2, before any work
    assert main([*(["--quick"] if other.quick else []), "--reuse-peer",
                 "--out", str(tmp_path)]) == 2
    assert "another configuration" in capsys.readouterr().err
