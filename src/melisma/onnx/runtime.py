"""The onnxruntime engine: a ``melisma export`` folder -> conversions, with numpy and onnxruntime only.

    voice = load_onnx_voice("alto-onnx/")               # the folder ``melisma export alto -o alto-onnx`` wrote
    out = voice.convert_detailed(audio, sr, transpose=2)

The pipeline is the torch engine's (``melisma.singer.convert.Voice``) stage for stage, through the same code where
no network is involved: ``FeatureExtractor`` for F0 and loudness (the pitch settings the manifest records),
``plan_cuts`` / ``convert_in_chunks`` for long inputs, ``melisma.singer.options`` for singer mixes, transposition
and rates; ``log_mel_np`` and ``melisma.onnx.synthesis`` are the numpy twins of the torch log-mel and of the
builtin vocoder's signal path. Noise comes from ``numpy.random.Generator(PCG64(seed))`` (a seeded conversion is
reproducible; it is not the torch engine's noise, so the two engines agree within the manifest's tolerance only
when given the same noise, which ``noise=`` allows).

Nothing here imports torch (tests/test_export.py converts in a subprocess and checks ``sys.modules``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE, n_frames
from melisma.errors import MelismaError
from melisma.features.extractor import FeatureExtractor
from melisma.features.mel import log_mel_np
from melisma.features.pitch import fit_frames, get_pitch_extractor, model_pitch
from melisma.formats import check
from melisma.onnx.synthesis import synthesize
from melisma.singer.chunking import convert_in_chunks, plan_cuts
from melisma.singer.options import (
    Conversion,
    auto_transpose_semitones,
    check_convert_options,
    resample,
    singer_mix,
    to_project_rate,
)

GRAPHS = ("content", "singer", "vocoder")
TORCH_FREE_PITCH = ("dio", "harvest")  # fcpe and crepe are torch networks
NoiseSource = Callable[[tuple[int, ...]], np.ndarray]  # shape -> float32 standard normal of that shape


def numpy_noise(seed: int) -> NoiseSource:
    """Standard normal float32 arrays from one ``numpy.random.Generator`` seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    return lambda shape: rng.standard_normal(shape, dtype=np.float32)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The checked ``manifest.json`` of an export folder (one-line MelismaError for anything else)."""
    path = Path(folder) / "manifest.json"
    if not Path(folder).is_dir() or not path.is_file():
        raise MelismaError(f"{folder}: not a melisma export folder (no manifest.json); make one with "
                           "'melisma export VOICE -o DIR'")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MelismaError(f"{path}: unreadable export manifest ({exc})") from None
    check(manifest, "onnx-export", path)
    missing = [g for g in GRAPHS if g not in manifest.get("graphs", {})]
    if missing:
        raise MelismaError(f"{path}: the export lacks the graphs {', '.join(missing)}")
    return manifest


class OnnxVoice:
    """An exported voice ready to convert on onnxruntime (CPU). ``threads``: onnxruntime's intra-op threads
    (None: its default, one per core)."""

    def __init__(self, folder: str | os.PathLike, threads: int | None = None, f0_method: str | None = None,
                 verify: bool = True) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.sessions = {name: self._session(name, threads, verify) for name in GRAPHS}
        pitch = dict(self.manifest["pitch"])
        method = pitch.pop("method")
        if f0_method is not None and f0_method != method:
            if f0_method not in TORCH_FREE_PITCH:
                raise MelismaError(f"--f0 {f0_method}: the onnx engine runs the torch-free trackers only "
                                   f"({', '.join(TORCH_FREE_PITCH)})")
            tracker = model_pitch(f0_method)
        else:
            tracker = get_pitch_extractor(method, **pitch)
        self.features = FeatureExtractor(tracker, None, self.manifest["loudness"], mel=False)

    def _session(self, name: str, threads: int | None, verify: bool) -> Any:
        import onnxruntime as ort

        entry = self.manifest["graphs"][name]
        path = self.folder / entry["file"]
        if not path.is_file():
            raise MelismaError(f"{path}: graph file missing from the export")
        data = path.read_bytes()
        if verify and _sha256(data) != entry["sha256"]:
            raise MelismaError(f"{path}: graph does not match the manifest's sha256 (changed after export)")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a damaged graph
            raise MelismaError(f"{path}: onnxruntime cannot load the graph ({str(exc)[:100]})") from None

    @property
    def singers(self) -> list[str]:
        return list(self.manifest["singers"])

    @property
    def default_singer(self) -> str | None:
        return self.manifest.get("default_singer")

    def transpose_for(self, f0: np.ndarray, transpose: float, auto_transpose: bool,
                      singer: str | dict | None = None) -> float:
        """Semitones a conversion of a source whose model F0 is ``f0`` (Hz) shifts by: ``transpose``, plus with
        ``auto_transpose`` the shift towards ``singer``'s range (as ``Voice.transpose_for``)."""
        if not auto_transpose:
            return float(transpose)
        weights = singer_mix(singer if singer else self.default_singer, self.singers)
        return transpose + auto_transpose_semitones(f0, self.manifest["median_f0"], self.singers, weights)

    def model_f0(self, audio: np.ndarray, transpose: float, auto_transpose: bool,
                 singer: str | dict | None) -> tuple[np.ndarray, float]:
        """The F0 (n_frames(n),) Hz the model is given for (n,) audio at SAMPLE_RATE, and the shift applied."""
        f0 = self.features.f0(audio)
        shift = self.transpose_for(f0, transpose, auto_transpose, singer)
        return (f0 * 2.0 ** (shift / 12.0)).astype(np.float32), float(shift)

    def render(self, audio: np.ndarray, f0: np.ndarray, weights: np.ndarray, noise: NoiseSource) -> np.ndarray:
        """One chunk: (n,) source at SAMPLE_RATE + its model F0 (>= n_frames(n),) Hz -> (n,) converted waveform."""
        n = audio.shape[0]
        t = n_frames(n)
        x = np.ascontiguousarray(audio, dtype=np.float32)
        content = fit_frames(self._run("content", mel=log_mel_np(x)), t)
        f0_t = np.ascontiguousarray(fit_frames(f0, t)[None], dtype=np.float32)
        loud = self.features.loudness(x)[None]
        mel = self._run("singer", content=content, f0=f0_t, loudness=loud, singer_weights=weights[None],
                        noise=noise((1, int(self.manifest["n_mels"]), t)))
        log_mag = self._run("vocoder", mel=mel, f0=f0_t)
        voc = self.manifest["vocoder"]
        n_sub = t * (HOP_SIZE // voc["sub_hop"]) + 1
        spectrum_noise = noise((2, 1, n_sub, voc["n_fft"] // 2 + 1))
        wave = synthesize(log_mag, f0_t, spectrum_noise, voc["n_fft"], voc["sub_hop"])[0]
        return fit_frames(wave, n).astype(np.float32)

    def _run(self, graph: str, **feeds: np.ndarray) -> np.ndarray:
        return self.sessions[graph].run(None, feeds)[0]

    def convert(self, audio: np.ndarray, sr: int, **options: Any) -> tuple[np.ndarray, int]:
        """(n,) mono waveform at ``sr`` -> (converted waveform, output rate); options as ``convert_detailed``."""
        out = self.convert_detailed(audio, sr, **options)
        return out.audio, out.sr

    def convert_detailed(self, audio: np.ndarray, sr: int, *, transpose: float = 0.0,
                         auto_transpose: bool = False, steps: int = 1, sampler: str = "consistency",
                         singer: str | dict | None = None, f0: str | None = None, output_sr: int | None = None,
                         max_chunk_s: float = 30.0, seed: int = 0, noise: NoiseSource | None = None) -> Conversion:
        """``Voice.convert_detailed`` on onnxruntime: the one-step student only (``steps`` 1, consistency)."""
        check_convert_options(transpose, steps, sampler, max_chunk_s)
        if steps != 1 or sampler != "consistency":
            raise MelismaError("the onnx engine runs the one-step student only (--steps 1, --sampler consistency)")
        if f0 is not None and f0 != self.features.pitch.name:
            raise MelismaError(f"f0 {f0!r}: this voice was loaded with {self.features.pitch.name}; load it with "
                               "load_onnx_voice(dir, f0=...)")
        x = to_project_rate(audio, sr)
        weights = singer_mix(singer if singer else self.default_singer, self.singers)
        f0_full, shift = self.model_f0(x, transpose, auto_transpose, singer)
        draw = noise if noise is not None else numpy_noise(seed)

        def one_chunk(segment: np.ndarray, start: int) -> np.ndarray:
            return self.render(segment, f0_full[start // HOP_SIZE:], weights, draw)

        y = convert_in_chunks(x, one_chunk, plan_cuts(x, max_chunk_s))
        out_sr = int(output_sr or SAMPLE_RATE)
        y = resample(y, SAMPLE_RATE, out_sr)
        return Conversion(fit_frames(y, int(round(audio.shape[0] * out_sr / sr))).astype(np.float32), out_sr, shift)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def load_onnx_voice(folder: str | os.PathLike, *, threads: int | None = None, f0: str | None = None) -> OnnxVoice:
    """An export folder -> OnnxVoice (graphs checked against the manifest's hashes). ``f0``: another torch-free
    pitch tracker than the one the export records."""
    return OnnxVoice(folder, threads=threads, f0_method=f0)
