"""The Voice: a loaded voice pack plus the content encoder, pitch extractor and vocoder it needs.

    voice = melisma.load_voice("alto")                # built-in name or path to a .melisma pack
    out, sr = voice.convert(audio, 44100, transpose=2, singer="alto")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from melisma import paths
from melisma.audio.constants import HOP_SIZE, SAMPLE_RATE, n_frames
from melisma.errors import MelismaError
from melisma.features.extractor import FeatureExtractor
from melisma.features.pitch import fit_frames, model_pitch
from melisma.identity import describe, identity_matches, registry_name
from melisma.singer.chunking import convert_in_chunks, plan_cuts
from melisma.singer.consistency import consistency_sample
from melisma.singer.edm import edm_sample
from melisma.singer.model import SingerNet, denormalise_mel
from melisma.singer.options import (
    Conversion,
    auto_transpose_semitones,
    check_convert_options,
    resample,
    singer_mix,
    to_project_rate,
)
from melisma.singer.voicepack import PACK_SUFFIX, VoicePack, VoicePackError, load_pack, read_header


@dataclass(frozen=True)
class ConvertOptions:
    """Inference options. ``singer``: a name, ``"a:0.7,b:0.3"``, a {name: weight} dict, or None (first singer)."""

    transpose: float = 0.0
    auto_transpose: bool = False
    steps: int = 1
    sampler: str = "consistency"  # or "teacher" (EDM Heun) when the pack ships the teacher
    singer: str | dict | None = None
    max_chunk_s: float = 30.0
    seed: int = 0


def builtin_voices() -> list[str]:
    """Names of the voices shipped with melisma: pack files in assets/voices and the singers of the base pack."""
    names = {p.stem for p in paths.BUILTIN_VOICES.glob(f"*{PACK_SUFFIX}")}
    if paths.BASE_PACK.is_file():
        names.update(read_header(paths.BASE_PACK)["singers"])
    return sorted(names)


def resolve_voice(voice: str | os.PathLike) -> tuple[Path, str | None]:
    """A pack path, a built-in pack of that name, or a singer of the shipped base pack -> (pack, default singer)."""
    p = Path(voice)
    if p.is_file():
        return p, None
    builtin = paths.BUILTIN_VOICES / f"{voice}{PACK_SUFFIX}"
    if builtin.is_file():
        return builtin, None
    if paths.BASE_PACK.is_file() and str(voice) in read_header(paths.BASE_PACK)["singers"]:
        return paths.BASE_PACK, str(voice)
    names = ", ".join(builtin_voices()) or "none installed"
    raise VoicePackError(f"{voice}: no such voice pack file or built-in voice (built-in: {names})")


def parse_singer_mix(spec: str | dict | None, singers: list[str]) -> torch.Tensor:
    """Singer choice -> (S,) weights summing to 1 (``melisma.singer.options.singer_mix`` as a tensor)."""
    return torch.from_numpy(singer_mix(spec, singers))


def default_component(kind: str, identity: str) -> torch.nn.Module:
    """The installed content encoder (``kind`` ``"content"``) or vocoder (``"vocoder"``) of the registry name in
    ``identity`` (``builtin@ab12..``, ``builtin-v1`` -> ``builtin``; ``dsp-cepstral-v1`` -> ``dsp-cepstral``).

    Whether its weights are the ones ``identity`` records is checked by ``Voice``, not here."""
    if kind == "content":
        from melisma.content import get_content_encoder

        return get_content_encoder(registry_name(identity))
    from melisma.vocoder import get_vocoder

    return get_vocoder(registry_name(identity))


def check_components(content_encoder: torch.nn.Module, vocoder: torch.nn.Module, want_content: str,
                     want_vocoder: str, trained: str, error: type[Exception]) -> None:
    """``error`` unless the loaded content encoder and vocoder are the ones ``trained`` (a pack, a model)
    recorded (``melisma.identity``)."""
    for role, label, comp, want in (("content", "content encoder", content_encoder, want_content),
                                    ("vocoder", "vocoder", vocoder, want_vocoder)):
        have = str(getattr(comp, "identity", ""))
        if not identity_matches(role, want, have):
            raise error(f"{trained} was trained with the {label} {describe(role, want)}; the loaded one is {have!r}")


class Voice:
    """A voice pack ready to convert: singer model + content encoder + vocoder (inference only, CPU)."""

    def __init__(self, pack: VoicePack, content_encoder: torch.nn.Module, vocoder: torch.nn.Module,
                 f0_method: str = "dio", default_singer: str | None = None):
        check_components(content_encoder, vocoder, pack.content_encoder, pack.vocoder, "this voice pack",
                         VoicePackError)
        self.pack = pack
        self.student = pack.build_student()
        self._teacher: SingerNet | None = None
        self.content_encoder = content_encoder.eval()
        self.vocoder = vocoder.eval()
        self.f0_method = f0_method
        # the same extraction as training: model pitch, RMS loudness, content (mel is the model's output)
        self.features = FeatureExtractor(f0_method, self.content_encoder, "rms", mel=False)
        if default_singer is not None and default_singer not in pack.singers:
            raise VoicePackError(f"singer {default_singer!r} is not in this voice pack")
        self.default_singer = default_singer  # used when convert() is given no singer

    @property
    def singers(self) -> list[str]:
        return list(self.pack.singers)

    def auto_transpose_semitones(self, f0: np.ndarray, weights: torch.Tensor) -> float:
        """Whole semitones that move the median voiced F0 of ``f0`` to the (weighted) singers' median."""
        medians = {s: st.median_f0 for s, st in self.pack.stats.items()}
        return auto_transpose_semitones(f0, medians, self.pack.singers, weights.numpy())

    def transpose_for(self, f0: np.ndarray, transpose: float, auto_transpose: bool,
                      singer: str | dict | None = None) -> float:
        """Semitones a conversion of a source whose model F0 is ``f0`` (Hz) shifts by: ``transpose``, plus with
        ``auto_transpose`` the shift towards ``singer``'s range (what ``melisma.singer.streaming`` asks)."""
        weights = parse_singer_mix(singer if singer else self.default_singer, self.singers)
        return transpose + (self.auto_transpose_semitones(f0, weights) if auto_transpose else 0.0)

    def model_f0(self, audio: np.ndarray, transpose: float = 0.0, auto_transpose: bool = False,
                 weights: torch.Tensor | None = None, method: str | None = None) -> tuple[np.ndarray, float]:
        """The F0 (n_frames(n),) Hz given to the model for (n,) audio at SAMPLE_RATE, and the shift applied:
        the source F0 moved by ``transpose`` semitones (+ the auto-transpose shift towards the singers' range)."""
        w = parse_singer_mix(None, self.singers) if weights is None else weights
        tracker = self.features.pitch if method is None or method == self.f0_method else model_pitch(method)
        f0 = tracker.extract(audio, SAMPLE_RATE)
        shift = transpose + (self.auto_transpose_semitones(f0, w) if auto_transpose else 0.0)
        return (f0 * 2.0 ** (shift / 12.0)).astype(np.float32), float(shift)

    @torch.no_grad()
    def render(self, audio: np.ndarray, f0: np.ndarray, weights: torch.Tensor, options: ConvertOptions,
               generator: torch.Generator) -> np.ndarray:
        """One chunk: (n,) source at SAMPLE_RATE + its model F0 (n_frames(n),) -> (n,) converted waveform."""
        n = audio.shape[0]
        x = np.ascontiguousarray(audio, dtype=np.float32)
        content = self.features.content(x, shifts=())  # (1, C, T): the clip itself, no shifted variant
        f0_t = torch.from_numpy(fit_frames(f0, n_frames(n)))[None]
        loud = torch.from_numpy(self.features.loudness(x))[None]
        mel = self.sample_mel(content, f0_t, loud, weights, options, generator)
        wave = self.vocoder(denormalise_mel(mel), f0_t, generator=generator)[0].numpy()
        return fit_frames(wave, n).astype(np.float32)

    def sample_mel(self, content: torch.Tensor, f0: torch.Tensor, loudness: torch.Tensor, weights: torch.Tensor,
                   options: ConvertOptions, generator: torch.Generator) -> torch.Tensor:
        """content (1, C, T), F0 (1, T) Hz, loudness (1, T) dB, singer weights (S,) -> normalised mel (1, 128, T)
        from the singer model (what a voice of another kind, e.g. a reference voice, draws differently)."""
        net = self._net(options)
        cond = net.condition(content, f0, loudness, weights[None])
        if net is self.student:
            return consistency_sample(net, cond, self.pack.config.n_mels, options.steps, generator)
        return edm_sample(net, cond, self.pack.config.n_mels, options.steps, generator=generator)

    def _net(self, options: ConvertOptions):
        if options.sampler == "consistency":
            return self.student
        if options.sampler != "teacher":
            raise MelismaError(f"sampler {options.sampler!r}: use consistency or teacher")
        if self._teacher is None:
            self._teacher = self.pack.build_teacher()
            if self._teacher is None:
                raise MelismaError("this voice pack ships no teacher model: use the consistency sampler")
        return self._teacher

    def convert(self, audio: np.ndarray, sr: int, **options) -> tuple[np.ndarray, int]:
        """(n,) mono waveform at ``sr`` -> (converted waveform, output rate); options as ``convert_detailed``."""
        out = self.convert_detailed(audio, sr, **options)
        return out.audio, out.sr

    def convert_detailed(self, audio: np.ndarray, sr: int, *, transpose: float = 0.0,
                         auto_transpose: bool = False, steps: int = 1, sampler: str = "consistency",
                         singer: str | dict | None = None, f0: str | None = None, output_sr: int | None = None,
                         max_chunk_s: float = 30.0, seed: int = 0) -> Conversion:
        """(n,) mono waveform at ``sr`` -> Conversion (waveform, output rate, transposition applied).

        The output lasts exactly as long as the input (round(n * output_sr / sr) samples); ``output_sr``
        defaults to SAMPLE_RATE. Long inputs are converted in chunks cut at silences and crossfaded.
        """
        check_convert_options(transpose, steps, sampler, max_chunk_s)
        opts = ConvertOptions(transpose, auto_transpose, steps, sampler, singer, max_chunk_s, seed)
        x = to_project_rate(audio, sr)
        weights = parse_singer_mix(singer if singer else self.default_singer, self.singers)
        f0_full, shift = self.model_f0(x, transpose, auto_transpose, weights, f0)
        gen = torch.Generator().manual_seed(seed)

        def one_chunk(segment: np.ndarray, start: int) -> np.ndarray:
            f = f0_full[start // HOP_SIZE:]
            return self.render(segment, f, weights, opts, gen)

        y = convert_in_chunks(x, one_chunk, plan_cuts(x, max_chunk_s))
        out_sr = int(output_sr or SAMPLE_RATE)
        y = resample(y, SAMPLE_RATE, out_sr)
        want = int(round(audio.shape[0] * out_sr / sr))
        return Conversion(fit_frames(y, want).astype(np.float32), out_sr, shift)


def load_voice(voice: str | os.PathLike, *, content_encoder: torch.nn.Module | None = None,
               vocoder: torch.nn.Module | None = None, f0: str = "dio") -> Voice:
    """Load a voice pack (path or built-in name) with the content encoder and vocoder it names.

    Pass ``content_encoder``/``vocoder`` to use instances of your own (their ``identity`` must match the pack).
    """
    path, default_singer = resolve_voice(voice)
    pack = load_pack(path)
    enc = content_encoder if content_encoder is not None else default_component("content", pack.content_encoder)
    voc = vocoder if vocoder is not None else default_component("vocoder", pack.vocoder)
    return Voice(pack, enc, voc, f0, default_singer)
