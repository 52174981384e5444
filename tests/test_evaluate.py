"""Honest checks of melisma.evaluate on real clips of different voices.

Clips come from the committed tiny corpus (tests/data/corpus) when it is there, otherwise from a
handful of festival / espeak-ng renderings made once per session.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from extras import needs_dnsmos, needs_matplotlib, needs_pesq_stoi, needs_resemblyzer

from melisma.audio.constants import FRAME_PERIOD_MS, SAMPLE_RATE
from melisma.audio.io import load_audio, save_audio
from melisma.evaluate import evaluate_clips, target_embedding_of
from melisma.evaluate.similarity import cosine, speaker_embedding

CORPUS = Path(__file__).parent / "data" / "corpus"
TEXTS = ("I hear your voice across the silver water.", "Every singer needs a song that carries the heart.")
FALLBACK_VOICES = {  # voice id -> command prefix writing a wav to the path given last
    "festival:kal": ["text2wave", "-eval", "(voice_kal_diphone)"],
    "festival:ked": ["text2wave", "-eval", "(voice_ked_diphone)"],
    "espeak:en+f3": ["espeak-ng", "-v", "en+f3"],
}


def _render(voice: str, text: str, wav: Path) -> None:
    cmd = FALLBACK_VOICES[voice]
    if cmd[0] == "text2wave":
        txt = wav.with_suffix(".txt")
        txt.write_text(text)
        subprocess.run([*cmd, str(txt), "-o", str(wav)], check=True, capture_output=True)
    else:
        subprocess.run([*cmd, "-w", str(wav), text], check=True, capture_output=True)


@dataclass(frozen=True)
class Clip:
    voice: str
    path: Path
    group: str  # clips sharing it are parallel (same text, and melody when sung)
    f0: Path | None = None  # true F0 .npy (sung corpus clips: the imposed melody)
    sung: bool = False


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, list[Clip]]:
    """voice id -> two clips of that voice (corpus: [speech, sung]; fallback: two spoken texts)."""
    if (CORPUS / "corpus.json").exists():
        from melisma.corpus.manifest import load_corpus

        by_voice: dict[str, list[Clip]] = {}
        for r in sorted(load_corpus(CORPUS), key=lambda r: (r.voice, r.kind != "speech")):
            f0 = r.f0_path if r.f0_source == "melody" else None
            by_voice.setdefault(r.voice, []).append(Clip(r.voice, r.audio_path, r.parallel_group, f0, r.kind == "sung"))
        return {v: c[:2] for v, c in by_voice.items() if len(c) >= 2}
    if not shutil.which("text2wave") or not shutil.which("espeak-ng"):
        pytest.skip("no committed corpus and no festival/espeak-ng to render one")
    folder = tmp_path_factory.mktemp("voices")
    out: dict[str, list[Clip]] = {}
    for v_index, voice in enumerate(FALLBACK_VOICES):
        for t_index, text in enumerate(TEXTS):
            wav = folder / f"v{v_index}_t{t_index}.wav"
            _render(voice, text, wav)
            out.setdefault(voice, []).append(Clip(voice, wav, f"t{t_index}"))
    return out


@pytest.fixture(scope="session")
def clip(clips) -> tuple[Clip, np.ndarray]:
    """A sung clip with true F0 when the corpus has one, (clip, audio at 44.1 kHz trimmed to 3 s)."""
    every = [c for pair in clips.values() for c in pair]
    chosen = next((c for c in every if c.f0 is not None), every[0])
    return chosen, load_audio(chosen.path)[0][: 3 * SAMPLE_RATE]


@pytest.fixture(scope="session")
def speech(clips) -> np.ndarray:
    """A clean spoken clip (a kokoro voice when the corpus has one), audio at 44.1 kHz, at most 3 s."""
    firsts = [pair[0] for pair in clips.values() if not pair[0].sung]
    chosen = next((c for c in firsts if c.voice.startswith("kokoro:")), firsts[0])
    return load_audio(chosen.path)[0][: 3 * SAMPLE_RATE]


def _world_shift(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Resynthesise with WORLD with every F0 scaled by 2^(semitones/12); timing and envelope kept."""
    import pyworld

    from melisma.features.pitch import world_f0

    x = audio.astype(np.float64)
    f0, t = world_f0(x, SAMPLE_RATE, "harvest", refine=False)
    sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE)
    ap = pyworld.d4c(x, f0, t, SAMPLE_RATE)
    y = pyworld.synthesize(f0 * 2 ** (semitones / 12), sp, ap, SAMPLE_RATE, FRAME_PERIOD_MS)
    return y[: audio.size].astype(np.float32)


def _with_noise(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(audio.size).astype(np.float32)
    scale = np.sqrt(np.mean(audio**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return (audio + scale * noise).astype(np.float32)


@pytest.mark.slow
@needs_resemblyzer
def test_clip_against_itself_scores_similarity_one_and_no_pitch_error(clip):
    _, audio = clip
    a = (audio, SAMPLE_RATE)
    r = evaluate_clips([a], target_embedding=target_embedding_of([a]), sources=[a], metrics=["similarity", "pitch"])
    s = r.clips[0]
    assert r.mean("target_similarity") == s.target_similarity
    assert s.target_similarity > 0.99 and s.source_similarity > 0.99
    assert s.cents_error_mean < 1.0 and s.vuv_agreement == 1.0 and s.f0_correlation > 0.999


@pytest.mark.slow
@needs_resemblyzer
def test_silent_output_gets_no_similarity(clip):
    _, audio = clip
    silent = (np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    s = evaluate_clips([silent], target_embedding=target_embedding_of([(audio, SAMPLE_RATE)]),
                       metrics=["similarity"]).clips[0]
    assert np.isnan(s.target_similarity)
    from melisma.errors import AudioInputError

    with pytest.raises(AudioInputError):
        target_embedding_of([silent])


@pytest.mark.slow
@needs_resemblyzer
def test_two_voices_score_clearly_lower_than_two_clips_of_one_voice(clips):
    # Pairs always join a voice's first clip with a second clip (corpus: speech with sung), so the
    # same-voice and different-voice pairs differ only in the voice, not in speech vs singing.
    embs = {v: [speaker_embedding(load_audio(c.path)[0], SAMPLE_RATE) for c in pair] for v, pair in clips.items()}
    voices = list(embs)
    same = np.array([cosine(*embs[v]) for v in voices])
    diff = np.array([[cosine(embs[a][0], embs[b][1]) for a in voices] for b in voices])
    np.fill_diagonal(diff, np.nan)
    assert len(voices) >= 3
    assert same.mean() - np.nanmean(diff) > 0.1, (same, diff)
    # each second clip is closest to the first clip of its own voice
    identified = [same[i] > np.nanmax(diff[i]) for i in range(len(voices))]
    assert np.mean(identified) >= 0.8, (same, diff)


@pytest.mark.slow
def test_three_semitone_shift_reads_300_cents_against_source_and_0_against_intended(clip):
    _, audio = clip
    shifted = (_world_shift(audio, 3.0), SAMPLE_RATE)
    src = (audio, SAMPLE_RATE)
    plain = evaluate_clips([shifted], sources=[src], transpose=0.0, metrics=["pitch"]).clips[0]
    aimed = evaluate_clips([shifted], sources=[src], transpose=3.0, metrics=["pitch"]).clips[0]
    assert abs(plain.cents_error_median - 300.0) < 25.0
    assert aimed.cents_error_median < 25.0
    assert aimed.cents_error_mean < plain.cents_error_mean - 200.0


def test_ground_truth_f0_judges_the_sung_melody(clip, tmp_path):
    """Against the corpus's true (melody) F0: the clip itself ~0 cents, the same F0 a minor third up ~300."""
    from melisma.evaluate.pitch import extract_f0

    c, audio = clip
    true_f0 = np.load(c.f0) if c.f0 is not None else extract_f0(audio, SAMPLE_RATE, "dio")
    np.save(tmp_path / "true.npy", true_f0)
    np.save(tmp_path / "up3.npy", true_f0 * 2 ** (3 / 12))
    a = (audio, SAMPLE_RATE)
    r = evaluate_clips([a, a], reference_f0=[tmp_path / "true.npy", tmp_path / "up3.npy"], metrics=["pitch"])
    same, up = r.clips
    assert same.cents_error_median < 30.0 and same.vuv_agreement > 0.8
    assert abs(up.cents_error_median - 300.0) < 30.0


@pytest.mark.slow
@needs_dnsmos
@needs_pesq_stoi
def test_added_noise_lowers_dnsmos_and_pesq(speech):
    audio = speech
    clean, noisy = (audio, SAMPLE_RATE), (_with_noise(audio, 5.0), SAMPLE_RATE)
    r = evaluate_clips([clean, noisy], originals=[clean], metrics=["dnsmos", "intrusive"])
    c, n = r.clips
    assert n.dnsmos_bak < c.dnsmos_bak - 0.5 and n.dnsmos_ovrl < c.dnsmos_ovrl - 0.3
    assert c.pesq_wb > 4.5 and n.pesq_wb < 2.5
    assert c.stoi > 0.99 > n.stoi


def test_mcd_zero_for_itself_small_for_a_resynthesis_larger_for_another_voice(clips):
    from melisma.evaluate.mcd import mcd

    first = [pair[0] for pair in clips.values()]
    ca, cb = next((x, y) for x, y in itertools.combinations(first, 2) if x.group == y.group)
    a, b = load_audio(ca.path)[0], load_audio(cb.path)[0]  # parallel: same text, two voices
    assert mcd(a, a, SAMPLE_RATE) == pytest.approx(0.0, abs=1e-9)
    copy = mcd(_world_shift(a, 0.0), a, SAMPLE_RATE)
    other = mcd(b, a, SAMPLE_RATE)
    assert 0.0 < copy < 0.7 * other and other > 3.0, (copy, other)


@pytest.mark.slow
@needs_resemblyzer
@needs_matplotlib
def test_cli_writes_versioned_json_and_report(clips, tmp_path):
    from melisma.cli import main

    (va, pa), (vb, pb) = list(clips.items())[:2]
    pa, pb = [c.path for c in pa], [c.path for c in pb]
    conv = tmp_path / "converted.wav"
    save_audio(conv, load_audio(pb[0])[0][: 2 * SAMPLE_RATE], SAMPLE_RATE)
    (tmp_path / "times.json").write_text(json.dumps({"converted.wav": 0.5}))
    out, rep = tmp_path / "scores.json", tmp_path / "report"
    rc = main(["-q", "evaluate", str(conv), "--target-ref", str(pb[1]), "--source", str(pa[0]),
               "--metrics", "similarity,pitch,speed", "--judge-pitch", "dio",
               "--rtf-json", str(tmp_path / "times.json"), "--json", str(out), "--report", str(rep)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["format"] == "melisma.evaluation" and data["format_version"] == 1
    clip_scores = data["clips"][0]
    assert clip_scores["closer_to_target"] is True  # same voice as the target, another voice than the source
    assert clip_scores["rtf"] == pytest.approx(0.5 / clip_scores["duration_s"], rel=1e-6)
    assert set(data["aggregate"]["target_similarity"]) == {"mean", "median", "worst", "n"}
    page = (rep / "index.html").read_text()
    assert page.count("<audio") == 3 and (rep / "audio" / f"target_00{pb[1].suffix}").exists() and (rep / "plots" / "000.png").stat().st_size > 10_000
    assert (rep / "audio" / "000_output.wav").exists() and (rep / "audio" / "000_source.flac").exists() or \
        (rep / "audio" / "000_source.wav").exists()


def test_cli_rejects_mismatched_inputs_without_writing(clips, tmp_path):
    from melisma.cli import main

    paths = [c.path for c in next(iter(clips.values()))]
    out = tmp_path / "scores.json"
    rc = main(["-q", "evaluate", str(paths[0]), str(paths[1]), str(paths[0]), "--source", str(paths[0]),
               str(paths[1]), "--metrics", "pitch", "--json", str(out)])
    assert rc == 2 and not out.exists()
    assert main(["-q", "evaluate", str(tmp_path / "missing.wav"), "--json", str(out)]) == 2
    assert not out.exists()
