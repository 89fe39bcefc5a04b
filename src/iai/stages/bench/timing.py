"""The one timing helper of ``iai bench``: seconds of full rollouts and their peak extra memory.

Peak memory: on CUDA the allocator's peak (``torch.cuda.max_memory_allocated``); on Linux CPUs the
process's resident-set high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``); elsewhere NaN.
"""

from __future__ import annotations

import ctypes
import math
import re
import statistics
import time
from pathlib import Path

import torch

from iai.core.rollout import rollout

_STATUS = Path("/proc/self/status")


def _rss_mb(key: str) -> float:
    match = re.search(rf"{key}:\s+(\d+) kB", _STATUS.read_text())
    return int(match.group(1)) / 1024 if match else math.nan


def _reset_peak(device: torch.device) -> float:
    """Reset the peak counter; return memory in use now (MB)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        # give freed heap back to the OS first, or the next run reuses it and its peak is invisible
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return _rss_mb("VmRSS")
    except OSError:
        return math.nan


def _peak(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _rss_mb("VmHWM") if _STATUS.exists() else math.nan


def timed(learner, family, tasks, batch_size, dev, repeats, threads, step_fn=None) -> tuple[list[float], float]:
    """(seconds of each of ``repeats`` full rollouts, their peak extra MB) on ``threads`` CPU threads."""
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        times, peaks = [], []
        for _ in range(repeats):
            base = _reset_peak(dev)
            start = time.perf_counter()
            rollout(learner, family, tasks, batch_size, steps="last", device=dev, step_fn=step_fn)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append(time.perf_counter() - start)
            peaks.append(_peak(dev) - base)
        return times, max(peaks)
    finally:
        torch.set_num_threads(old)


def measure(learner, family, tasks, batch_size: int, device: torch.device, repeats: int) -> dict:
    """Mean wall time (and its sem over repeats) and peak extra memory of one full rollout."""
    timed(learner, family, tasks, batch_size, device, 1, 0)  # warm-up: first-call allocations and kernel selection
    times, peak = timed(learner, family, tasks, batch_size, device, repeats, 0)
    sem = statistics.stdev(times) / math.sqrt(repeats) if repeats > 1 else math.nan
    return {"wall_time_s": (statistics.mean(times), sem), "peak_memory_mb": (peak, math.nan)}
