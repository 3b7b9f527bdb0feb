"""The heap setting the command lines make: freed word-sized arrays are reused, not faulted
back in from the kernel for the next word."""

import subprocess
import sys

import pytest

FAULTS = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from digitd.daemon.heap import keep_freed_memory
    assert keep_freed_memory()
def word():  # a word's arrays: a few of about 1 MB alive at once, then all freed
    arrays = [np.ones(1 << 17) for _ in range(3)]
    return sum(a.sum() for a in arrays)
for _ in range(5):  # settle: the first words fault their pages in whatever is set
    word()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    word()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout)


def test_freed_arrays_are_reused_without_page_faults():
    if sys.platform != "linux":
        pytest.skip("glibc's malloc only")
    default, kept = page_faults("default"), page_faults("keep")
    assert default > 100 * 256  # by default, a word's 1 MB arrays fault in again each time
    assert kept < 1000
