"""`python -m bench.streams`: the benchmark's streams section alone, at the full run's size
(every held-out FSDD speaker, 40 digits a stream, every noise and SNR), digitd only unless
`--peer`; results as JSON on stdout. About a minute without pocketsphinx: what a change to
the stream path (segmenter, padding, strings stage) is measured with before a full run."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from digitd.daemon.heap import keep_freed_memory

from bench import material
from bench.run import REPO, BenchConfig, fold_models, streaming


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "fsdd")
    parser.add_argument("--reports", type=Path, default=REPO / "reports")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "digitd" / "synth")
    parser.add_argument("--peer", action="store_true", help="pocketsphinx too (much slower)")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as `digitd` does: the latencies are the daemon's
    cfg = BenchConfig()
    models, _ = fold_models(args.reports)
    fsdd = material.load_fsdd(args.data, cfg.per_digit)
    with tempfile.TemporaryDirectory() as truth:
        results = streaming(cfg, fsdd, models, Path(truth), args.cache, with_peer=args.peer)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
