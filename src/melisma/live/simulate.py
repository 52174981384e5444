"""Running the streaming engine over a whole file exactly as live: block by block, optionally paced by the
wall clock, timing every block against its deadline (what ``melisma stream`` and the benchmark report)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from melisma.live.engine import StreamConverter


@dataclass(frozen=True)
class StreamReport:
    """Figures of one run: latency and per-block compute (ms), deadlines missed, blocks run."""

    block_ms: float
    latency_ms: float
    blocks: int
    compute_p50_ms: float
    compute_p99_ms: float
    compute_max_ms: float
    missed_deadlines: int
    realtime: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        load = 100.0 * self.compute_p99_ms / self.block_ms
        return [f"block {self.block_ms:.1f} ms, algorithmic latency {self.latency_ms:.1f} ms",
                f"compute per block: median {self.compute_p50_ms:.2f} ms, p99 {self.compute_p99_ms:.2f} ms "
                f"({load:.0f} % of the block), max {self.compute_max_ms:.2f} ms",
                f"missed deadlines: {self.missed_deadlines} of {self.blocks} blocks"
                + (" (paced by the wall clock)" if self.realtime else "")]


def run_stream(conv: StreamConverter, audio: np.ndarray, realtime: bool = False,
               align: bool = True) -> tuple[np.ndarray, StreamReport]:
    """(n,) float32 at 44.1 kHz through ``conv`` block by block -> (output, report).

    ``align``: drop the engine's delay from the start and feed silence at the end, so the output lines up with
    the input sample for sample (n samples); otherwise the output is what a listener hears, delay included.
    ``realtime``: each block is handed over when its last sample would have arrived from a sound card; a block
    whose output is not ready by the time the next one arrives has missed its deadline."""
    b = conv.block_size
    extra = conv.delay if align else 0
    n = audio.shape[0]
    total = -(-(n + extra) // b) * b
    x = np.zeros(total, np.float32)
    x[:n] = audio
    block_s = b / conv.sample_rate
    out, times, missed = [], [], 0
    start = time.perf_counter()
    for i in range(total // b):
        due = start + (i + 1) * block_s
        if realtime:
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        t0 = time.perf_counter()
        out.append(conv.process(x[i * b : (i + 1) * b]))
        t1 = time.perf_counter()
        times.append(t1 - t0)
        late = t1 > due + block_s if realtime else (t1 - t0) > block_s
        missed += int(late)
    y = np.concatenate(out)[extra : extra + n]
    ms = np.array(times) * 1000.0
    report = StreamReport(round(1000.0 * block_s, 2), round(1000.0 * conv.latency_samples / conv.sample_rate, 2),
                          len(times), round(float(np.median(ms)), 3), round(float(np.percentile(ms, 99)), 3),
                          round(float(ms.max()), 3), missed, realtime)
    return y.astype(np.float32), report
