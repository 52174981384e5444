"""Signal constants shared by every stage. One place; everything else derives from these.

The STFT/mel settings are those of the openvpi NSF-HiFiGAN 44.1 kHz vocoder used by so-vits-svc and
DDSP-SVC, so that a user's NSF-HiFiGAN checkpoint consumes melisma's mel without conversion.
"""

from __future__ import annotations

SAMPLE_RATE = 44_100  # Hz, the project rate: every model, feature and output works here
HOP_SIZE = 512  # samples between frames
N_FFT = 2048  # STFT size
WIN_SIZE = 2048  # analysis window (Hann)
N_MELS = 128  # mel bins
F_MIN = 40.0  # Hz, lowest mel edge
F_MAX = 16_000.0  # Hz, highest mel edge
FRAME_RATE = SAMPLE_RATE / HOP_SIZE  # 86.13 frames/s: pitch, loudness, content and mel share it
FRAME_PERIOD_MS = 1000.0 * HOP_SIZE / SAMPLE_RATE  # 11.61 ms, for pyworld's frame_period

F0_MIN = 50.0  # Hz, lowest pitch any extractor reports (below G1 is noise for singing)
F0_MAX = 1100.0  # Hz, highest pitch (above C6 plus headroom)

TARGET_LUFS = -20.0  # integrated loudness clips are normalised to (EBU R128 / BS.1770)


def n_frames(n_samples: int) -> int:
    """Number of feature frames for ``n_samples`` samples at SAMPLE_RATE (centred frames, ceil)."""
    return n_samples // HOP_SIZE + 1
