"""``export_voice``: a voice (pack path or built-in name) -> a folder of ONNX graphs + ``manifest.json``.

Folder layout (``melisma.onnx-export`` v1)::

    content.onnx   log-mel (1, 128, T) -> content (1, C, T)
    singer.onnx    content, f0 (1, T) Hz, loudness (1, T) dBFS, singer weights (1, S), noise (1, 128, T) -> log-mel
    vocoder.onnx   log-mel (1, 128, T), f0 (1, T) -> (1, T, 2 * n_bins) filter log magnitudes
    manifest.json  stamp, source voice and its identities, singers and their median F0, the pitch settings, the
                   vocoder's synthesis settings, each graph's sha256, the tolerances and the errors measured

Before anything is published, every graph is run by onnxruntime on a probe (the demo vocal's first seconds,
through the torch path's own features) and compared with the torch module: a float export whose error exceeds
``TOLERANCES`` is refused. int8 graphs (``quantize="int8"``: onnxruntime's dynamic quantisation of the weights)
record their error but are not held to it; their quality cost is what ``melisma evaluate`` measures.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from melisma.audio.constants import SAMPLE_RATE, n_frames
from melisma.errors import MelismaError
from melisma.formats import stamp
from melisma.identity import weights_identity
from melisma.onnx.graphs import ContentGraph, FilterGraph, StudentGraph

OPSET = 17
QUANTIZE = ("int8",)
# largest |onnxruntime - torch| a float export may show on the probe, per graph output (float32 rounding, with room)
TOLERANCES = {"content": 1e-4, "singer": 1e-3, "vocoder": 1e-3}
# what the whole onnx engine matches the torch engine to, given the same noise (tests/test_export.py checks it)
WAVEFORM_TOLERANCE = {"max_abs": 2e-3, "snr_db": 40.0}
PROBE_SECONDS = 3.0


def export_voice(voice: str | os.PathLike, out_dir: str | os.PathLike, *, singer: str | None = None,
                 quantize: str | None = None, pitch_speed: int = 1) -> dict[str, Any]:
    """Export ``voice`` to ``out_dir`` (created, or replaced when it holds an earlier export); returns the
    manifest. ``singer``: the default singer of the export (a name of the pack; built-in names give their own).
    ``pitch_speed``: dio's decimation for conversions through the export (1: the torch engine's F0 exactly; 2
    halves the pitch stage's time, see docs/architecture.md for what it changes)."""
    from melisma.features.pitch import model_pitch
    from melisma.singer.convert import load_voice, resolve_voice

    if quantize is not None and quantize not in QUANTIZE:
        raise MelismaError(f"quantize {quantize!r}: choose one of {', '.join(QUANTIZE)}")
    out = Path(out_dir)
    _check_destination(out)
    pack_path, _ = resolve_voice(voice)
    v = load_voice(voice)
    _check_exportable(v)
    pitch = model_pitch("dio", speed=pitch_speed).settings()
    if singer is not None and singer not in v.singers:
        raise MelismaError(f"singer {singer!r} is not in this voice pack (singers: {', '.join(v.singers)})")
    graphs = _graphs(v)
    probe = _probe_inputs(v)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        entries = {name: _write_graph(g, probe[name], tmp / f"{name}.onnx", quantize) for name, g in graphs.items()}
        manifest = _manifest(v, pack_path, voice, singer or v.default_singer, entries, quantize, pitch)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _check_destination(out: Path) -> None:
    from melisma.atomic import check_output_folder

    check_output_folder(out, "export")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise MelismaError(f"{out}: folder is not empty and holds no earlier export; choose a new folder")


def _check_exportable(v: Any) -> None:
    from melisma.content.builtin import BuiltinContentEncoder
    from melisma.vocoder.builtin import BuiltinVocoder

    if not isinstance(v.content_encoder, BuiltinContentEncoder):
        raise MelismaError(f"only the builtin content encoder exports to ONNX (this voice uses "
                           f"{v.content_encoder.identity})")
    if not isinstance(v.vocoder, BuiltinVocoder):
        raise MelismaError(f"only the builtin vocoder exports to ONNX (this voice uses {v.vocoder.identity})")


def _graphs(v: Any) -> dict[str, torch.nn.Module]:
    return {"content": ContentGraph(v.content_encoder.net).eval(), "singer": StudentGraph(v.student).eval(),
            "vocoder": FilterGraph(v.vocoder).eval()}


def _probe_inputs(v: Any) -> dict[str, dict[str, torch.Tensor]]:
    """Named inputs of each graph for a few seconds of the demo vocal, computed as the torch engine computes them."""
    from melisma.audio.io import load_audio
    from melisma.features.mel import log_mel
    from melisma.paths import DEMO

    audio, _ = load_audio(DEMO / "demo-vocal.ogg", SAMPLE_RATE)
    x = np.ascontiguousarray(audio[: int(PROBE_SECONDS * SAMPLE_RATE)], dtype=np.float32)
    t = n_frames(x.size)
    f0 = torch.from_numpy(v.features.f0(x))[None]
    loud = torch.from_numpy(v.features.loudness(x))[None]
    mel_in = log_mel(x)
    with torch.no_grad():
        content = v.content_encoder(torch.from_numpy(x)[None])
    weights = torch.full((1, len(v.singers)), 1.0 / len(v.singers))
    noise = torch.randn((1, v.pack.config.n_mels, t), generator=torch.Generator().manual_seed(0))
    return {"content": {"mel": mel_in},
            "singer": {"content": content, "f0": f0, "loudness": loud, "singer_weights": weights, "noise": noise},
            "vocoder": {"mel": mel_in, "f0": f0}}


def _dynamic_axes(inputs: dict[str, torch.Tensor], frames_axis_out: int) -> dict[str, dict[int, str]]:
    axes = {name: {a.dim() - 1: "frames"} for name, a in inputs.items() if name != "singer_weights"}
    return {**axes, "out": {frames_axis_out: "frames"}}


def _write_graph(graph: torch.nn.Module, inputs: dict[str, torch.Tensor], path: Path,
                 quantize: str | None) -> dict[str, Any]:
    """Export, optionally quantise, check against torch on ``inputs``; -> the graph's manifest entry."""
    name = path.stem
    with torch.no_grad():
        expected = graph(*inputs.values()).numpy()
    frames_axis = 1 if name == "vocoder" else 2
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notices
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, tuple(inputs.values()), str(path), input_names=list(inputs), output_names=["out"],
                          dynamic_axes=_dynamic_axes(inputs, frames_axis), opset_version=OPSET, dynamo=False)
    if quantize == "int8":
        _quantize_int8(path)
    got = _run_onnx(path, {k: v.numpy() for k, v in inputs.items()})
    error = float(np.abs(got - expected).max())
    if quantize is None and not error <= TOLERANCES[name]:
        raise MelismaError(f"ONNX {name} graph differs from torch by {error:.2e} (tolerance {TOLERANCES[name]:.0e})")
    return {"file": path.name, "sha256": file_sha256(path), "inputs": list(inputs), "max_abs_error": error,
            "tolerance": TOLERANCES[name]}


def _quantize_int8(path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = path.with_suffix(".fp32.onnx")
    path.rename(fp32)
    quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
    fp32.unlink()


def _run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def file_sha256(path: Path) -> str:
    """sha256 hex digest of the file ``path``."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _manifest(v: Any, pack_path: Path, voice: str | os.PathLike, singer: str | None,
              graphs: dict[str, dict[str, Any]], quantize: str | None, pitch: dict[str, Any]) -> dict[str, Any]:
    import melisma
    from melisma.onnx.synthesis import LOG_MAG_MAX

    cfg = v.vocoder.cfg
    return {
        **stamp("onnx-export"),
        "melisma_version": melisma.__version__,
        "voice": {"name": str(voice), "pack_sha256": file_sha256(pack_path),
                  "student": weights_identity("student", v.student.state_dict()),
                  "content_encoder": v.content_encoder.identity, "vocoder": v.vocoder.identity},
        "singers": list(v.singers),
        "default_singer": singer,
        "median_f0": {s: st.median_f0 for s, st in v.pack.stats.items()},
        "n_mels": v.pack.config.n_mels,
        "pitch": pitch,
        "loudness": v.features.loudness_kind,
        "vocoder": {"n_fft": cfg.n_fft, "sub_hop": cfg.sub_hop, "log_mag_max": LOG_MAG_MAX},
        "sampler": {"name": "consistency", "steps": 1},
        "quantize": quantize,
        "opset": OPSET,
        "graphs": graphs,
        "waveform_tolerance": WAVEFORM_TOLERANCE,
    }


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished folder ``tmp`` onto ``out`` (an earlier export there is replaced whole)."""
    os.chmod(tmp, 0o777 & ~_umask())
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
