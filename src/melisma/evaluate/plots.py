"""Per-clip figure: log-mel spectrograms of source and output, and the source / intended / output F0."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from melisma.audio.constants import FRAME_RATE
from melisma.evaluate.deps import require


def log_mel_image(audio: np.ndarray) -> np.ndarray:
    """(n,) mono at SAMPLE_RATE -> (N_MELS, T) natural-log mel, the project's own features."""
    from melisma.features.mel import log_mel

    return log_mel(np.asarray(audio, dtype=np.float32))[0].numpy()


def clip_figure(
    path: Path,
    title: str,
    output: np.ndarray,
    source: np.ndarray | None = None,
    f0: dict[str, np.ndarray | None] | None = None,
) -> Path:
    """Write one PNG: a spectrogram row per clip given, then a pitch row when any F0 track is given.

    ``f0`` maps a label ("source", "intended", "output") to a (T,) Hz track on the shared grid (0 = unvoiced).
    """
    require("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = [("source", source), ("output", output)] if source is not None else [("output", output)]
    tracks = {k: v for k, v in (f0 or {}).items() if v is not None}
    rows = len(specs) + (1 if tracks else 0)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.4 * rows), squeeze=False, sharex=True)
    for ax, (label, audio) in zip(axes[:, 0], specs, strict=False):
        mel = log_mel_image(audio)
        ax.imshow(mel, origin="lower", aspect="auto", cmap="magma",
                  extent=(0, mel.shape[1] / FRAME_RATE, 0, mel.shape[0]))
        ax.set_ylabel(f"{label}\nmel bin")
    if tracks:
        _pitch_axes(axes[-1, 0], tracks)
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _pitch_axes(ax, tracks: dict[str, np.ndarray]) -> None:
    styles = {"source": ("tab:gray", "-"), "intended": ("tab:blue", "--"), "output": ("tab:red", "-")}
    for label, f0 in tracks.items():
        y = np.where(f0 > 0, f0, np.nan)
        color, style = styles.get(label, ("black", ":"))
        ax.plot(np.arange(len(f0)) / FRAME_RATE, y, style, color=color, label=label, linewidth=1.2)
    ax.set_yscale("log")
    ax.set_ylabel("F0 (Hz)")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


