"""Training a tiny voice pack end to end: features, teacher, distillation, pack, interruption and resume."""

from __future__ import annotations

import json

import pytest
import torch
from singer_standins import TINY, StandInEncoder, StandInVocoder, write_dataset

from melisma.singer.voicepack import load_pack
from melisma.training import singer as training
from melisma.training.singer import TrainConfig, train_voice


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "alto", 3)


def test_train_interrupt_resume_and_pack(tmp_path, dataset, monkeypatch):
    torch.set_num_threads(1)
    cfg = TrainConfig(teacher_steps=6, distill_steps=4, batch_size=2, segment_frames=16, val_every=3,
                      checkpoint_every=2, log_every=2, pitch_shifts=(2.0,), from_scratch=True, model=TINY)
    kwargs = dict(content_encoder=StandInEncoder(), vocoder=StandInVocoder())
    out = tmp_path / "voice.melisma"
    real_step = training.Trainer.train_step

    def interrupted(self):
        if self.state.phase == "teacher" and self.state.step == 4:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(training.Trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_voice([("alto", dataset)], out, cfg, **kwargs)
    assert not out.exists()
    ckpt = tmp_path / "voice.melisma.work" / "checkpoint.safetensors"
    assert ckpt.exists()
    monkeypatch.setattr(training.Trainer, "train_step", real_step)
    steps = []
    monkeypatch.setattr(training.Trainer, "train_step", lambda self: steps.append(self.state.phase) or real_step(self))
    train_voice([("alto", dataset)], out, cfg, **kwargs)
    assert steps.count("teacher") == 2 and steps.count("distill") == 4  # continued at teacher step 4
    pack = load_pack(out)
    assert pack.singers == ["alto"] and pack.config.n_singers == 1
    assert 190 < pack.stats["alto"].median_f0 < 290
    log = [json.loads(line) for line in (tmp_path / "voice.melisma.work" / "log.jsonl").read_text().splitlines()]
    assert any("val_mel_l1" in r for r in log) and any(r["phase"] == "distill" for r in log)
    _assert_tensorboard_has(tmp_path / "voice.melisma.work" / "tensorboard", "teacher/loss", "preview/student_1step")
    with pytest.raises(Exception, match="other settings"):
        train_voice([("alto", dataset)], out, TrainConfig(**{**cfg.__dict__, "batch_size": 3}), **kwargs)


def test_fine_tune_starts_from_the_base_pack(tmp_path, dataset, monkeypatch):
    from singer_standins import tiny_pack

    torch.set_num_threads(1)
    base = tiny_pack(tmp_path / "base.melisma")
    monkeypatch.setattr(training, "BASE_MODEL", base)
    cfg = TrainConfig(teacher_steps=0, distill_steps=0, batch_size=2, segment_frames=16, pitch_shifts=(), model=TINY)
    out = train_voice([("alto", dataset)], tmp_path / "v.melisma", cfg, content_encoder=StandInEncoder(),
                      vocoder=StandInVocoder())
    pack, ref = load_pack(out), load_pack(base)
    assert pack.info["from_base"] and pack.singers == ["alto"]
    # the new singer starts at the base singers' mean voice; the rest is the base model
    mean = ref.student["encoder.singer.weight"].mean(0)
    assert torch.allclose(pack.student["encoder.singer.weight"][0], mean.half().float(), atol=1e-3)
    assert torch.equal(pack.student["denoiser.head.weight"], ref.student["denoiser.head.weight"])


def test_with_a_prior_the_student_is_distilled_on_the_fine_tuned_teachers_encoder(tmp_path, dataset, monkeypatch):
    from singer_standins import tiny_pack

    torch.set_num_threads(1)
    base = tiny_pack(tmp_path / "base.melisma")
    monkeypatch.setattr(training, "BASE_MODEL", base)
    cfg = TrainConfig(teacher_steps=3, distill_steps=2, batch_size=2, segment_frames=16, pitch_shifts=(),
                      val_every=3, teacher_ema_decay=0.0, model=TINY)
    out = train_voice([("alto", dataset)], tmp_path / "v.melisma", cfg, content_encoder=StandInEncoder(),
                      vocoder=StandInVocoder())
    pack, ref = load_pack(out), load_pack(base)
    assert TINY.prior_layers > 0
    encoder = [k for k in pack.student if k.startswith("encoder.")]
    assert "encoder.prior.weight" in encoder
    for k in encoder:  # one encoder, one prior, for teacher and student
        assert torch.equal(pack.student[k], pack.teacher[k]), k
    assert not torch.equal(pack.teacher["encoder.prior.weight"], ref.teacher["encoder.prior.weight"])
    assert pack.config.sigma_data == cfg.sigma_data != ref.config.sigma_data  # the run's, not the base's
    assert not torch.equal(pack.student["denoiser.head.weight"], ref.student["denoiser.head.weight"])
    log = [json.loads(line) for line in (tmp_path / "v.melisma.work" / "log.jsonl").read_text().splitlines()]
    assert any("val_prior_l1" in r for r in log)


def test_the_distilled_and_shipped_teacher_is_the_weight_average(tmp_path, dataset, monkeypatch):
    torch.set_num_threads(1)
    cfg = TrainConfig(teacher_steps=3, distill_steps=0, batch_size=2, segment_frames=16, pitch_shifts=(),
                      teacher_ema_decay=0.5, from_scratch=True, model=TINY)
    raw, average = {}, {}
    real_next = training.Trainer._next_phase

    def spy(self):
        if self.state.phase == "teacher":
            raw.update({k: v.clone() for k, v in self.teacher.state_dict().items()})
            average.update({k: v.clone() for k, v in self.teacher_ema.state_dict().items()})
        real_next(self)

    monkeypatch.setattr(training.Trainer, "_next_phase", spy)
    out = train_voice([("alto", dataset)], tmp_path / "v.melisma", cfg, content_encoder=StandInEncoder(),
                      vocoder=StandInVocoder())
    key = "denoiser.head.weight"
    assert not torch.equal(raw[key], average[key])  # three updates moved the teacher away from its average
    shipped = load_pack(out).teacher[key]
    assert torch.allclose(shipped, average[key].half().float(), atol=1e-3)
    assert not torch.allclose(shipped, raw[key].half().float(), atol=1e-6)


def test_max_minutes_bounds_both_phases_together(tmp_path, dataset, monkeypatch):
    """A fake clock that advances one second per update: with an 8 s budget the teacher gets 0.6 of it and the
    distillation only what is left, even when no checkpoint recorded the teacher's time."""
    torch.set_num_threads(1)
    clock = [0.0]
    monkeypatch.setattr(training.time, "monotonic", lambda: clock[0])
    real_step = training.Trainer.train_step
    phases = []

    def one_second(self):
        clock[0] += 1.0
        phases.append(self.state.phase)
        return real_step(self)

    monkeypatch.setattr(training.Trainer, "train_step", one_second)
    cfg = TrainConfig(teacher_steps=50, distill_steps=50, batch_size=2, segment_frames=16, pitch_shifts=(),
                      val_every=1000, checkpoint_every=1000, log_every=1000, max_minutes=8 / 60,
                      from_scratch=True, model=TINY)
    train_voice([("alto", dataset)], tmp_path / "v.melisma", cfg, content_encoder=StandInEncoder(),
                vocoder=StandInVocoder())
    assert phases.count("teacher") == 5  # 0.6 x 8 s
    assert phases.count("distill") == 3  # the 8 s minus the teacher's 5


def _assert_tensorboard_has(folder, scalar: str, audio: str) -> None:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                            reason="the train extra (tensorboard) is not installed")

    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"audio": 0, "scalars": 0})
    acc.Reload()
    assert scalar in acc.Tags()["scalars"], acc.Tags()
    assert audio in acc.Tags()["audio"], acc.Tags()
    clip = acc.Audio(audio)[-1]
    assert clip.sample_rate == 44100 and clip.length_frames > 0


def test_a_second_run_reads_the_feature_cache_that_conversion_agrees_with(tmp_path, dataset, monkeypatch):
    """Training fills DATASET/cache; the next run (here a --restart) computes nothing; the cached features are
    the ones a Voice extracts from the same clip at conversion time."""
    from singer_standins import tiny_pack

    from melisma.audio.io import load_audio
    from melisma.singer.convert import load_voice
    from melisma.training import singer_data

    torch.set_num_threads(1)
    monkeypatch.setattr(training, "BASE_MODEL", tmp_path / "no-base.melisma")
    cfg = TrainConfig(teacher_steps=1, distill_steps=1, batch_size=2, segment_frames=16, pitch_shifts=(2.0,),
                      model=TINY, from_scratch=True)
    kwargs = {"content_encoder": StandInEncoder(), "vocoder": StandInVocoder()}
    runs = []
    real_load = singer_data.load_dataset

    def spy(*args, **kw):
        clips, caches = real_load(*args, **kw)
        runs.append([(c.hits, c.misses) for c in caches])
        return clips, caches

    monkeypatch.setattr(training, "load_dataset", spy)
    train_voice([("alto", dataset)], tmp_path / "v.melisma", cfg, **kwargs)
    entries = sorted((dataset / "cache").glob("*.safetensors"))
    mtimes = [e.stat().st_mtime_ns for e in entries]
    train_voice([("alto", dataset)], tmp_path / "v.melisma", cfg, restart=True, **kwargs)
    assert runs == [[(0, 3)], [(3, 0)]] and len(entries) == 3
    assert [e.stat().st_mtime_ns for e in entries] == mtimes

    extractor = training.training_features(content_encoder=StandInEncoder(), pitch_shifts=cfg.pitch_shifts)
    cached = singer_data.dataset_cache(dataset, extractor).get(dataset / "clips" / "c1.flac")[0]
    voice = load_voice(tiny_pack(tmp_path / "p.melisma"), content_encoder=StandInEncoder(),
                       vocoder=StandInVocoder())
    audio, _ = load_audio(dataset / "clips" / "c1.flac")
    f0, _ = voice.model_f0(audio)
    assert cached.content.shape[0] == 2
    assert torch.equal(torch.from_numpy(f0), torch.from_numpy(cached.f0))
    assert torch.equal(torch.from_numpy(voice.features.loudness(audio)), torch.from_numpy(cached.loudness))
    assert torch.allclose(voice.features.content(audio, shifts=())[0], torch.from_numpy(cached.content[0]))
