"""Audio I/O and the project's fixed signal constants."""

from melisma.audio.constants import FRAME_RATE, HOP_SIZE, N_FFT, N_MELS, SAMPLE_RATE
from melisma.audio.io import AudioInfo, load_audio, probe_audio, save_audio

__all__ = [
    "FRAME_RATE", "HOP_SIZE", "N_FFT", "N_MELS", "SAMPLE_RATE",
    "AudioInfo", "load_audio", "probe_audio", "save_audio",
]
