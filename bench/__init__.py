"""digitd's benchmark harness: `python -m bench [--quick]` regenerates BENCHMARKS.md.

  material.py      the audio: FSDD per held-out speaker, unseen TTS voices, long streams
                   with noise and truth times, non-digit audio
  recognizers.py   digitd and pocketsphinx behind one small interface
  scoring.py       edit distance, streaming matches (TensorFlow test_streaming_accuracy style)
  cost.py          CPU per audio hour, peak RSS, start-up to ready, inference time
  report.py        BENCHMARKS.md tables and PNG plots
  run.py           runs it all on the same audio, side by side
  segmenter_ab.py  two segmenter settings side by side on the same streams
                   (`python -m bench.segmenter_ab '{"onset_db": 0}'`)
"""

import os

# As the daemon runs (daemon/cli.py): one OpenBLAS thread, set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
