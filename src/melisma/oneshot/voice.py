"""One-shot voices: a voice given by reference clips, converted without training.

    from melisma.oneshot import reference_voice
    voice = reference_voice(["ref1.wav", "ref2.wav"])        # several references are averaged
    out, sr = voice.convert(audio, 44100, auto_transpose=True)  # the same API as a trained ``Voice``

A ``SpeakerEmbedding`` (the unit-norm output of the model's speaker encoder, averaged over the references, with
their median F0) can be saved as a small stamped JSON file (``.speaker``, ``melisma.speaker-embedding``) and
used again by name (``melisma voices embed REF... -o NAME``, then ``-v NAME``); embeddings mix as trained
singers do (``a:0.6,b:0.4``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from melisma.atomic import write_text_atomic
from melisma.audio.constants import FRAME_RATE, SAMPLE_RATE, TARGET_LUFS
from melisma.errors import MelismaError
from melisma.features.extractor import FeatureExtractor
from melisma.formats import check, stamp
from melisma.oneshot.model import speech_mask
from melisma.oneshot.weights import OneShotWeights, load_oneshot
from melisma.singer.consistency import consistency_sample
from melisma.singer.convert import ConvertOptions, Voice, check_components, default_component
from melisma.singer.model import SingerNet

SPEAKER_SUFFIX = ".speaker"
MIN_SOUND_S = 1.0  # a reference needs at least this much non-silent audio
MIN_VOICED_S = 0.25  # ... and this much pitched voice (speech or singing)
VOICES_ENV = "MELISMA_VOICES"  # folder of the user's saved embeddings (default ~/.local/share/melisma/voices)

ReferenceInput = str | os.PathLike | tuple[np.ndarray, int]


@dataclass(frozen=True)
class SpeakerEmbedding:
    """A reference voice: ``vector`` (S,) unit-norm, the references' median voiced F0 (Hz), the identity of the
    one-shot model that made it, and where it came from (file names, seconds of sound)."""

    vector: np.ndarray
    median_f0: float
    model: str
    sources: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_json(self) -> dict:
        d = asdict(self)
        d["vector"] = [round(float(v), 6) for v in self.vector]
        d["sources"] = list(self.sources)
        return {**stamp("speaker-embedding"), **d}

    @classmethod
    def from_json(cls, doc: dict, source: str | os.PathLike) -> SpeakerEmbedding:
        check(doc, "speaker-embedding", source, error=MelismaError)
        try:
            vec = np.asarray(doc["vector"], dtype=np.float32)
            emb = cls(vec, float(doc["median_f0"]), str(doc["model"]), tuple(map(str, doc.get("sources", []))),
                      float(doc.get("seconds", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise MelismaError(f"{source}: damaged speaker embedding ({exc})") from None
        if vec.ndim != 1 or not np.isfinite(vec).all() or not 0.5 < float(np.linalg.norm(vec)) < 1.5:
            raise MelismaError(f"{source}: damaged speaker embedding (not a unit vector)")
        if not (math.isfinite(emb.median_f0) and 0.0 <= emb.median_f0 < 5000.0):
            raise MelismaError(f"{source}: damaged speaker embedding (median F0 {emb.median_f0})")
        return emb


def save_embedding(emb: SpeakerEmbedding, path: str | os.PathLike) -> Path:
    """Write ``emb`` as JSON, atomically; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(emb.to_json(), indent=1) + "\n")
    return out


def load_embedding(path: str | os.PathLike) -> SpeakerEmbedding:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except OSError as exc:
        raise MelismaError(f"{p}: cannot read the speaker embedding ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError):
        raise MelismaError(f"{p}: not a melisma speaker embedding (not JSON)") from None
    return SpeakerEmbedding.from_json(doc, p)


def user_voices_dir() -> Path:
    """Where ``melisma voices embed -o NAME`` keeps embeddings: $MELISMA_VOICES or ~/.local/share/melisma/voices."""
    return Path(os.environ.get(VOICES_ENV) or Path.home() / ".local" / "share" / "melisma" / "voices").expanduser()


def embedding_path(name: str | os.PathLike) -> Path:
    """Where ``-o NAME`` saves: a bare name goes to ``user_voices_dir()``; a path gets the .speaker suffix."""
    p = Path(name)
    if p.parent == Path(".") and not p.suffix and os.sep not in str(name):
        return user_voices_dir() / f"{p.name}{SPEAKER_SUFFIX}"
    return p if p.suffix == SPEAKER_SUFFIX else p.with_name(p.name + SPEAKER_SUFFIX)


def find_embedding(name: str) -> Path | None:
    """The embedding file ``name`` means: a .speaker path, NAME.speaker here, or NAME in the user's folder."""
    for p in (Path(name), Path(name + SPEAKER_SUFFIX), user_voices_dir() / f"{name}{SPEAKER_SUFFIX}"):
        if p.is_file() and p.suffix == SPEAKER_SUFFIX:
            return p
    return None


def parse_mix(spec: str) -> list[str]:
    """The names of ``a:0.6,b:0.4`` (or of a single name)."""
    return [part.strip().rpartition(":")[0] if ":" in part else part.strip() for part in spec.split(",")]


class OneShotModel:
    """The one-shot weights with the content encoder and vocoder they were trained with (identities checked)."""

    def __init__(self, weights: OneShotWeights, content_encoder: torch.nn.Module, vocoder: torch.nn.Module,
                 f0_method: str = "dio") -> None:
        check_components(content_encoder, vocoder, weights.content_encoder, weights.vocoder, "the one-shot model",
                         MelismaError)
        self.weights = weights
        self.net = weights.net.eval()
        self.identity = weights.identity
        self.content_encoder = content_encoder.eval()
        self.vocoder = vocoder.eval()
        self.f0_method = f0_method
        self.features = FeatureExtractor(f0_method, self.content_encoder, "rms", mel=False)

    @torch.no_grad()
    def embed_one(self, reference: ReferenceInput, name: str = "reference") -> tuple[torch.Tensor, np.ndarray, float]:
        """One reference -> (embedding (S,), its voiced F0 frames (Hz), seconds of sound); MelismaError (one
        line) for a clip too short, silent or without pitched voice."""
        from melisma.audio.io import load_audio
        from melisma.audio.loudness import normalize_loudness
        from melisma.features.mel import log_mel
        from melisma.singer.convert import resample

        if isinstance(reference, tuple):
            x = resample(np.asarray(reference[0], dtype=np.float32).reshape(-1), int(reference[1]), SAMPLE_RATE)
        else:
            x, _ = load_audio(reference, SAMPLE_RATE)
        x, lufs = normalize_loudness(x, SAMPLE_RATE, TARGET_LUFS)
        if not math.isfinite(lufs):
            raise MelismaError(f"{name}: the reference is silent")
        mel = log_mel(torch.from_numpy(x)[None])
        mask = speech_mask(mel)
        sound = float(mask.sum()) / FRAME_RATE
        if sound < MIN_SOUND_S:
            raise MelismaError(f"{name}: only {sound:.2f} s of sound; a reference needs at least {MIN_SOUND_S:g} s")
        f0 = self.features.f0(x)
        voiced = f0[f0 > 0]
        if voiced.size / FRAME_RATE < MIN_VOICED_S:
            raise MelismaError(f"{name}: no pitched voice found (a reference is someone speaking or singing)")
        return self.net.speaker(mel, mask)[0], voiced, sound

    def embed(self, references: Sequence[ReferenceInput]) -> SpeakerEmbedding:
        """Several references -> one embedding: the mean of their unit vectors, made unit again."""
        if not references:
            raise MelismaError("give at least one reference clip")
        vecs, f0s, seconds, names = [], [], 0.0, []
        for i, ref in enumerate(references):
            name = f"reference {i + 1}" if isinstance(ref, tuple) else str(ref)
            v, f0, s = self.embed_one(ref, name)
            vecs.append(v)
            f0s.append(f0)
            seconds += s
            names.append(Path(name).name)
        mean = torch.nn.functional.normalize(torch.stack(vecs).mean(0), dim=0)
        return SpeakerEmbedding(mean.numpy().astype(np.float32), float(np.median(np.concatenate(f0s))),
                                self.identity, tuple(names), round(seconds, 2))

    def voice(self, embeddings: dict[str, SpeakerEmbedding], default: str | None = None) -> ReferenceVoice:
        return ReferenceVoice(self, embeddings, default)


def load_oneshot_model(path: str | os.PathLike | None = None, *, content_encoder: torch.nn.Module | None = None,
                       vocoder: torch.nn.Module | None = None, f0: str = "dio") -> OneShotModel:
    """The shipped one-shot model (or the file ``path``) with the content encoder and vocoder it names; pass your
    own instances to use them (their identities must match)."""
    weights = load_oneshot(path)
    enc = content_encoder if content_encoder is not None else default_component("content", weights.content_encoder)
    voc = vocoder if vocoder is not None else default_component("vocoder", weights.vocoder)
    return OneShotModel(weights, enc, voc, f0)


class ReferenceVoice(Voice):
    """A voice given by speaker embeddings instead of a trained pack; ``convert`` / ``convert_detailed`` take the
    same options as a trained ``Voice`` (transpose, auto-transpose to the references' range, long audio in
    chunks, ``steps``, seeds). Its "singers" are the embeddings' names, mixed like a pack's singers."""

    def __init__(self, model: OneShotModel, embeddings: dict[str, SpeakerEmbedding], default: str | None = None):
        if not embeddings:
            raise MelismaError("a reference voice needs at least one speaker embedding")
        for name, emb in embeddings.items():
            if emb.model != model.identity:
                raise MelismaError(f"{name}: this embedding was made with the one-shot model {emb.model}, not the "
                                   f"loaded {model.identity}; embed its references again")
            if emb.vector.shape != (model.net.cfg.speaker_dim,):
                raise MelismaError(f"{name}: embedding of width {emb.vector.shape}, the model needs "
                                   f"{model.net.cfg.speaker_dim}")
        self.model = model
        self.embeddings = dict(embeddings)
        self.content_encoder = model.content_encoder
        self.vocoder = model.vocoder
        self.f0_method = model.f0_method
        self.features = model.features
        self.default_singer = default

    @property
    def singers(self) -> list[str]:
        return list(self.embeddings)

    def auto_transpose_semitones(self, f0: np.ndarray, weights: torch.Tensor) -> float:
        """Whole semitones from the median voiced F0 of ``f0`` to the (weighted) references' median."""
        voiced = f0[f0 > 0]
        targets = [(float(w), e.median_f0) for e, w in zip(self.embeddings.values(), weights.tolist(), strict=True)
                   if w > 0 and e.median_f0 > 0]
        if voiced.size == 0 or not targets:
            return 0.0
        target_log = sum(w * math.log2(m) for w, m in targets) / sum(w for w, _ in targets)
        return float(round(12.0 * (target_log - math.log2(float(np.median(voiced))))))

    def speaker(self, weights: torch.Tensor) -> torch.Tensor:
        """(S,) mix weights -> (1, speaker_dim) unit-norm embedding: the weighted mean of the embeddings."""
        vecs = torch.stack([torch.from_numpy(e.vector) for e in self.embeddings.values()])
        return torch.nn.functional.normalize(weights @ vecs, dim=0)[None]

    def sample_mel(self, content: torch.Tensor, f0: torch.Tensor, loudness: torch.Tensor, weights: torch.Tensor,
                   options: ConvertOptions, generator: torch.Generator) -> torch.Tensor:
        """As ``Voice.sample_mel``, through the one-shot model: content codes + pitch + the mixed speaker
        embedding (``weights`` (S,) over the embeddings) condition its one-step decoder."""
        net, decoder = self.model.net, self._net(options)
        inp = net.decoder_input(net.head(content).q, net.pitch(f0))
        cond = decoder.condition(inp, f0, loudness, torch.ones(1, 1), self.speaker(weights))
        return consistency_sample(decoder, cond, net.cfg.singer.n_mels, options.steps, generator)

    def _net(self, options: ConvertOptions) -> SingerNet:
        if options.sampler != "consistency":
            raise MelismaError("a reference voice converts with the one-step consistency sampler only")
        return self.model.net.decoder


def reference_voice(references: Sequence[ReferenceInput], *, model: OneShotModel | None = None,
                    f0: str = "dio", name: str = "reference") -> ReferenceVoice:
    """A voice from reference clips (paths or (audio, sr) pairs), averaged; no training."""
    m = model or load_oneshot_model(f0=f0)
    return m.voice({name: m.embed(references)})


def speaker_voice(spec: str, *, model: OneShotModel | None = None, f0: str = "dio") -> ReferenceVoice | None:
    """The voice of saved embeddings ``spec`` (a name, a .speaker path, or a mix ``a:0.6,b:0.4``); None when
    ``spec`` names no embedding (so a caller can try voice packs)."""
    names = parse_mix(spec)
    found = {n: find_embedding(n) for n in names}
    if all(p is None for p in found.values()):
        return None
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise MelismaError(f"{', '.join(missing)}: no such speaker embedding (see `melisma voices list`)")
    m = model or load_oneshot_model(f0=f0)
    embeddings = {n: load_embedding(p) for n, p in found.items() if p is not None}
    return m.voice(embeddings, spec if len(names) > 1 or ":" in spec else None)
