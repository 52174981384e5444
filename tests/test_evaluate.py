"""Honest checks of melisma.evaluate on real clips of different voices.

Clips come from the committed tiny corpus (tests/data/corpus) when it is there, otherwise from a
handful of festival / espeak-ng renderings made once per session.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

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


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, list[Path]]:
    """voice id -> at least two clip paths (different texts) of that voice."""
    if (CORPUS / "corpus.json").exists():
        from melisma.corpus.manifest import load_corpus

        by_voice: dict[str, list[Path]] = {}
        for rec in load_corpus(CORPUS):
            by_voice.setdefault(rec.voice, []).append(rec.audio_path)
        return {v: p for v, p in by_voice.items() if len(p) >= 2}
    if not shutil.which("text2wave") or not shutil.which("espeak-ng"):
        pytest.skip("no committed corpus and no festival/espeak-ng to render one")
    folder = tmp_path_factory.mktemp("voices")
    out: dict[str, list[Path]] = {}
    for v_index, voice in enumerate(FALLBACK_VOICES):
        for t_index, text in enumerate(TEXTS):
            wav = folder / f"v{v_index}_t{t_index}.wav"
            _render(voice, text, wav)
            out.setdefault(voice, []).append(wav)
    return out


@pytest.fixture(scope="session")
def clip(clips) -> tuple[Path, np.ndarray]:
    """One clip, (path, audio at 44.1 kHz), trimmed to 3 s to keep harvest and WORLD cheap."""
    path = next(iter(clips.values()))[0]
    audio = load_audio(path)[0][: 3 * SAMPLE_RATE]
    return path, audio


def _world_shift(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Resynthesise with WORLD with every F0 scaled by 2^(semitones/12); timing and envelope kept."""
    import pyworld

    x = audio.astype(np.float64)
    f0, t = pyworld.harvest(x, SAMPLE_RATE, f0_floor=50.0, f0_ceil=1100.0, frame_period=FRAME_PERIOD_MS)
    sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE)
    ap = pyworld.d4c(x, f0, t, SAMPLE_RATE)
    y = pyworld.synthesize(f0 * 2 ** (semitones / 12), sp, ap, SAMPLE_RATE, FRAME_PERIOD_MS)
    return y[: audio.size].astype(np.float32)


def _with_noise(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(audio.size).astype(np.float32)
    scale = np.sqrt(np.mean(audio**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return (audio + scale * noise).astype(np.float32)


def test_clip_against_itself_scores_similarity_one_and_no_pitch_error(clip):
    _, audio = clip
    a = (audio, SAMPLE_RATE)
    r = evaluate_clips([a], target_embedding=target_embedding_of([a]), sources=[a], metrics=["similarity", "pitch"])
    s = r.clips[0]
    assert r.mean("target_similarity") == s.target_similarity
    assert s.target_similarity > 0.99 and s.source_similarity > 0.99
    assert s.cents_error_mean < 1.0 and s.vuv_agreement == 1.0 and s.f0_correlation > 0.999


def test_two_voices_score_clearly_lower_than_two_clips_of_one_voice(clips):
    embs = {v: [speaker_embedding(load_audio(p)[0], SAMPLE_RATE) for p in paths[:2]] for v, paths in clips.items()}
    same = [cosine(*e) for e in embs.values()]
    diff = [cosine(a, b) for (va, ea), (vb, eb) in itertools.combinations(embs.items(), 2)
            for a in ea for b in eb]
    assert len(same) >= 3 and len(diff) >= 3
    assert np.mean(same) - np.mean(diff) > 0.1, (same, diff)
    assert np.median(same) > np.quantile(diff, 0.9), (same, diff)


def test_three_semitone_shift_reads_300_cents_against_source_and_0_against_intended(clip):
    _, audio = clip
    shifted = (_world_shift(audio, 3.0), SAMPLE_RATE)
    src = (audio, SAMPLE_RATE)
    plain = evaluate_clips([shifted], sources=[src], transpose=0.0, metrics=["pitch"]).clips[0]
    aimed = evaluate_clips([shifted], sources=[src], transpose=3.0, metrics=["pitch"]).clips[0]
    assert abs(plain.cents_error_median - 300.0) < 25.0
    assert aimed.cents_error_median < 25.0
    assert aimed.cents_error_mean < plain.cents_error_mean - 200.0


def test_reference_f0_replaces_the_source_track(clip, tmp_path):
    from melisma.evaluate.pitch import extract_f0

    _, audio = clip
    true_f0 = extract_f0(audio, SAMPLE_RATE, "dio")
    np.save(tmp_path / "f0.npy", true_f0 * 2 ** (3 / 12))
    r = evaluate_clips([(audio, SAMPLE_RATE)], reference_f0=[tmp_path / "f0.npy"], judge_tracker="dio",
                       metrics=["pitch"])
    assert abs(r.clips[0].cents_error_median - 300.0) < 5.0


def test_added_noise_lowers_dnsmos_and_pesq(clip):
    _, audio = clip
    clean, noisy = (audio, SAMPLE_RATE), (_with_noise(audio, 5.0), SAMPLE_RATE)
    r = evaluate_clips([clean, noisy], originals=[clean], metrics=["dnsmos", "intrusive"])
    c, n = r.clips
    assert n.dnsmos_bak < c.dnsmos_bak - 0.5 and n.dnsmos_ovrl < c.dnsmos_ovrl - 0.3
    assert c.pesq_wb > 4.5 and n.pesq_wb < 2.5
    assert c.stoi > 0.99 > n.stoi


def test_mcd_zero_for_itself_small_for_a_resynthesis_larger_for_another_voice(clips):
    from melisma.evaluate.mcd import mcd

    (va, pa), (vb, pb) = list(clips.items())[:2]
    a, b = load_audio(pa[0])[0], load_audio(pb[0])[0]  # parallel: same text, two voices
    assert mcd(a, a, SAMPLE_RATE) == pytest.approx(0.0, abs=1e-9)
    copy = mcd(_world_shift(a, 0.0), a, SAMPLE_RATE)
    other = mcd(b, a, SAMPLE_RATE)
    assert 0.0 < copy < 0.7 * other and other > 3.0, (copy, other)


def test_cli_writes_versioned_json_and_report(clips, tmp_path):
    from melisma.cli import main

    (va, pa), (vb, pb) = list(clips.items())[:2]
    conv = tmp_path / "converted.wav"
    save_audio(conv, load_audio(pb[0])[0][: 2 * SAMPLE_RATE], SAMPLE_RATE)
    (tmp_path / "times.json").write_text(json.dumps({"converted.wav": 0.5}))
    out, rep = tmp_path / "scores.json", tmp_path / "report"
    rc = main(["-q", "evaluate", str(conv), "--target-ref", str(pb[1]), "--source", str(pa[0]),
               "--metrics", "similarity,pitch,speed", "--judge-pitch", "dio",
               "--rtf-json", str(tmp_path / "times.json"), "--json", str(out), "--report", str(rep)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["format"] == "melisma.evaluation" and data["version"] == 1
    clip_scores = data["clips"][0]
    assert clip_scores["closer_to_target"] is True  # same voice as the target, another voice than the source
    assert clip_scores["rtf"] == pytest.approx(0.25, rel=0.01)
    assert set(data["aggregate"]["target_similarity"]) == {"mean", "median", "worst", "n"}
    page = (rep / "index.html").read_text()
    assert page.count("<audio") == 2 and (rep / "plots" / "000.png").stat().st_size > 10_000
    assert (rep / "audio" / "000_output.wav").exists() and (rep / "audio" / "000_source.flac").exists() or \
        (rep / "audio" / "000_source.wav").exists()


def test_cli_rejects_mismatched_inputs_without_writing(clips, tmp_path):
    from melisma.cli import main

    paths = next(iter(clips.values()))
    out = tmp_path / "scores.json"
    rc = main(["-q", "evaluate", str(paths[0]), str(paths[1]), str(paths[0]), "--source", str(paths[0]),
               str(paths[1]), "--metrics", "pitch", "--json", str(out)])
    assert rc == 2 and not out.exists()
    assert main(["-q", "evaluate", str(tmp_path / "missing.wav"), "--json", str(out)]) == 2
    assert not out.exists()
