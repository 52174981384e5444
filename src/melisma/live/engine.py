"""The streaming engine: blocks of any size in, converted blocks out, with a fixed and reported latency.

    voice = open_stream_voice("festival-slt")          # a built-in voice, or a .melisma-stream file
    conv = voice.converter(block_size=882, transpose=0)
    out = conv.process(block)                           # (882,) -> (882,), block by block

Per block: ``FrontEnd`` (causal log-mel, loudness, YIN F0 on the streaming grid) -> content network ->
decoder (with the singer weights) -> vocoder network -> ``CausalSynth``, each network's state carried to the
next block, so nothing is recomputed and nothing is joined: there are no chunk seams to crossfade (SOLA is for
engines that convert overlapping windows independently). A silence gate fades the output to zero where the
input's window is below ``gate_db``.

Latency: frame k is complete when k * STREAM_HOP samples have arrived and gives the audio up to WINDOW / 2
samples before that point; a block ending between frames waits for the next one. Output sample i is the
conversion of input sample i - delay, delay = WINDOW / 2 + STREAM_HOP - gcd(block, STREAM_HOP), and the
algorithmic latency is block + delay (a sample waits for its block to fill, then for the delay).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melisma import paths
from melisma.audio.constants import SAMPLE_RATE
from melisma.errors import MelismaError
from melisma.live.frontend import STREAM_HOP, WINDOW, FrontEnd
from melisma.live.nets import content_inputs, decoder_inputs, log_mel_from_decoder, vocoder_inputs
from melisma.live.runtime import NumpyStack
from melisma.live.synthesis import CausalSynth
from melisma.live.weights import STREAM_SUFFIX, StreamNet, load_stream_net
from melisma.singer.options import singer_mix
from melisma.singer.voicepack import PACK_SUFFIX

GATE_DB = -50.0  # input windows quieter than this (dBFS RMS) are silenced
GATE_HOLD = 8  # frames (46 ms) the gate stays open after the input falls below it


def stream_delay(block_size: int) -> int:
    """Samples from an input sample to its converted output, beyond waiting for its block."""
    return WINDOW // 2 + STREAM_HOP - math.gcd(block_size, STREAM_HOP)


@dataclass
class StreamVoice:
    """The three streaming networks of a voice and its singers (``singers``; ``median_f0`` Hz each)."""

    content: StreamNet
    decoder: StreamNet
    vocoder: StreamNet
    default_singer: str | None = None

    def __post_init__(self) -> None:
        for role, net in (("content", self.content), ("vocoder", self.vocoder)):
            want = self.decoder.info.get(role)
            if want != net.identity:
                raise MelismaError(f"this streamable voice was distilled with the streaming {role} network {want}; "
                                   f"the installed one is {net.identity}")
        if self.default_singer is not None and self.default_singer not in self.singers:
            raise MelismaError(f"singer {self.default_singer!r} is not in this streamable voice")
        self.runtime = {role: NumpyStack(n.net) for role, n in
                        (("content", self.content), ("decoder", self.decoder), ("vocoder", self.vocoder))}

    @property
    def singers(self) -> list[str]:
        return list(self.decoder.info["singers"])

    @property
    def median_f0(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.decoder.info.get("median_f0", {}).items()}

    def converter(self, block_size: int, transpose: float = 0.0, singer: str | dict | None = None,
                  gate_db: float = GATE_DB, seed: int = 0) -> StreamConverter:
        return StreamConverter(self, block_size, transpose, singer, gate_db, seed)


def open_stream_voice(voice: str | os.PathLike, content: str | os.PathLike | None = None,
                      vocoder: str | os.PathLike | None = None) -> StreamVoice:
    """A ``.melisma-stream`` file, or the name of a built-in voice (a singer of the shipped streaming base)."""
    p = Path(voice)
    default_singer = None
    if p.is_file():
        if p.suffix == PACK_SUFFIX:
            raise MelismaError(f"{p} is a voice pack, not a streamable voice; make one with "
                               f"`melisma streamable {p} -o {p.with_suffix(STREAM_SUFFIX).name} --audio CLIPS`")
        decoder = load_stream_net(p, "decoder")
    elif paths.STREAM_BASE.is_file():
        decoder = load_stream_net(paths.STREAM_BASE, "decoder")  # loaded once: its singers are the voices
        if str(voice) not in decoder.info["singers"]:
            names = ", ".join(decoder.info["singers"])
            raise MelismaError(f"{voice}: no such streamable voice file or built-in voice (built-in: {names})")
        default_singer = str(voice)
    else:
        raise MelismaError(f"{voice}: no such streamable voice file (and no streaming base is installed)")
    return StreamVoice(load_stream_net(content or paths.STREAM_CONTENT_WEIGHTS, "content"), decoder,
                       load_stream_net(vocoder or paths.STREAM_VOCODER_WEIGHTS, "vocoder"), default_singer)


class StreamConverter:
    """Block-by-block conversion with a fixed latency (``latency_samples``); see the module docstring."""

    sample_rate = SAMPLE_RATE

    def __init__(self, voice: StreamVoice, block_size: int, transpose: float = 0.0,
                 singer: str | dict | None = None, gate_db: float = GATE_DB, seed: int = 0) -> None:
        if not 1 <= int(block_size) <= 10 * SAMPLE_RATE:
            raise MelismaError(f"block size must be 1 .. {10 * SAMPLE_RATE} samples, not {block_size}")
        self.voice = voice
        self.block_size = int(block_size)
        self.delay = stream_delay(self.block_size)
        self.latency_samples = self.block_size + self.delay
        self.gate_db = float(gate_db)
        self.seed = seed
        self.set_transpose(transpose)
        self.set_singer(singer)
        self.reset()
        self._frames(np.zeros(STREAM_HOP, np.float32))  # first calls load the filterbank and FFT plans: not live
        self.reset()

    @property
    def singers(self) -> list[str]:
        return self.voice.singers

    def set_transpose(self, semitones: float) -> None:
        if not math.isfinite(semitones) or abs(semitones) > 24:
            raise MelismaError(f"transpose must be within ±24 semitones, not {semitones}")
        self._ratio = 2.0 ** (float(semitones) / 12.0)
        self.transpose = float(semitones)

    def set_singer(self, spec: str | dict | None) -> None:
        """A singer of the voice, a mix ``"a:0.6,b:0.4"``, or None (the voice's default singer)."""
        chosen = spec if spec else self.voice.default_singer
        self._weights = singer_mix(chosen, self.singers).astype(np.float32)

    def reset(self) -> None:
        """Start a new stream: silence before it, every state cleared."""
        self.frontend = FrontEnd()
        self.synth = CausalSynth(self.seed)
        self._states: dict[str, list[np.ndarray] | None] = {"content": None, "decoder": None, "vocoder": None}
        self._fifo = np.zeros(self.delay, np.float32)
        self._skip = WINDOW // 2  # audio the first frames give for times before the stream began
        self._open = 0  # frames the gate stays open for

    def _gate(self, loudness: np.ndarray) -> np.ndarray:
        gains = np.empty(loudness.shape[0])
        for i, level in enumerate(loudness):
            self._open = GATE_HOLD if level > self.gate_db else max(self._open - 1, 0)
            gains[i] = 1.0 if self._open else 0.0
        return gains

    def _frames(self, block: np.ndarray) -> np.ndarray:
        frames = self.frontend.push(block)
        if not len(frames):
            return np.zeros(0, np.float32)
        f0 = (frames.f0 * self._ratio).astype(np.float32)
        nets, st = self.voice.runtime, self._states
        content, st["content"] = nets["content"](content_inputs(frames.mel), st["content"])
        x = decoder_inputs(content, f0, frames.loudness)
        out, st["decoder"] = nets["decoder"](x, st["decoder"], self._weights)
        log_mel = log_mel_from_decoder(out)
        filters, st["vocoder"] = nets["vocoder"](vocoder_inputs(log_mel, f0), st["vocoder"])
        return self.synth.push(filters, f0, self._gate(frames.loudness))

    def process(self, block: np.ndarray) -> np.ndarray:
        """(block_size,) float32 mono at 44.1 kHz -> (block_size,) converted, ``latency_samples`` late."""
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        if x.shape[0] != self.block_size:
            raise MelismaError(f"a block of {x.shape[0]} samples; this stream takes {self.block_size}")
        audio = self._frames(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0))
        if self._skip:
            drop = min(self._skip, audio.shape[0])
            audio, self._skip = audio[drop:], self._skip - drop
        self._fifo = np.concatenate([self._fifo, audio])
        out, self._fifo = self._fifo[: self.block_size], self._fifo[self.block_size :]
        return out



