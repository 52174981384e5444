"""Property-based fuzzing (hypothesis) of audio decoding, preparation and voice-pack loading with hostile bytes:
random bytes, forged and truncated WAV headers (absurd rates, channel counts, sizes), NaN/inf samples, one-sample
and hour-long inputs. Every case ends in a result or a one-line MelismaError, within its deadline and a memory
bound (numpy allocations, traced)."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the dev extra (hypothesis) is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from melisma.audio.io import load_audio, probe_audio  # noqa: E402
from melisma.errors import MelismaError  # noqa: E402

FUZZ = settings(max_examples=40, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture],
                derandomize=True)
MEMORY_BOUND = 256 * 2**20  # bytes numpy may hold at the peak of one case


def _decodes_or_refuses(path) -> None:
    tracemalloc.start()
    try:
        audio, sr = load_audio(path)
        assert audio.ndim == 1 and audio.dtype == np.float32 and np.isfinite(audio).all() and sr == 44100
    except MelismaError as exc:
        assert "\n" not in str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, peak


def wav_header(rate: int, channels: int, bits: int, tag: int, data_len: int) -> bytes:
    block = max(1, channels * bits // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    return (b"RIFF" + struct.pack("<I", (36 + data_len) & 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", data_len & 0xFFFFFFFF))


@FUZZ
@given(data=st.binary(min_size=0, max_size=4096), suffix=st.sampled_from([".wav", ".flac", ".mp3", ".ogg"]))
def test_random_bytes(tmp_path, data, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(data)
    _decodes_or_refuses(path)


@FUZZ
@given(rate=st.one_of(st.sampled_from([0, 1, 7999, 8000, 44100, 384000, 384001]), st.integers(0, 2**32 - 1)),
       channels=st.one_of(st.sampled_from([0, 1, 2, 8, 64, 65, 65535]), st.integers(0, 65535)),
       bits=st.sampled_from([0, 1, 8, 16, 24, 32, 64, 255]), tag=st.sampled_from([1, 3, 0xFFFE, 0, 0x55, 0xFFFF]),
       data_len=st.one_of(st.sampled_from([0, 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1)),
       payload=st.binary(max_size=2048), cut=st.integers(0, 2200))
def test_forged_and_truncated_wav_headers(tmp_path, rate, channels, bits, tag, data_len, payload, cut):
    path = tmp_path / "x.wav"
    path.write_bytes((wav_header(rate, channels, bits, tag, data_len) + payload)[:cut])
    _decodes_or_refuses(path)


@FUZZ
@given(samples=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=400),
       rate=st.sampled_from([8000, 22050, 44100, 96000]), channels=st.integers(1, 3))
def test_float_samples_with_nan_inf_and_one_sample(tmp_path, samples, rate, channels):
    path = tmp_path / "x.wav"
    data = np.asarray(samples, np.float32)
    frames = np.repeat(data[:, None], channels, axis=1)
    path.write_bytes(wav_header(rate, channels, 32, 3, frames.nbytes) + frames.tobytes())
    _decodes_or_refuses(path)
    if not np.isfinite(data).all():
        with pytest.raises(MelismaError, match="NaN or infinite"):
            load_audio(path)


def test_an_hour_long_input_is_probed_and_windowed_without_decoding_the_hour(tmp_path):
    """An hour at 8 kHz, 8-bit (29 MB on disk): the header is read, a 1 s window decoded, in bounded memory;
    and a header that claims an hour over 10 bytes of data decodes what is there."""
    path = tmp_path / "hour.wav"
    n = 3600 * 8000
    path.write_bytes(wav_header(8000, 1, 8, 1, n) + bytes([128]) * n)
    assert probe_audio(path).duration == pytest.approx(3600.0)
    tracemalloc.start()
    audio, _ = load_audio(path, 8000, start=1800.0, duration=1.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert audio.shape == (8000,) and peak < 16 * 2**20
    liar = tmp_path / "liar.wav"
    liar.write_bytes(wav_header(8000, 1, 8, 1, n) + bytes(range(120, 130)))
    _decodes_or_refuses(liar)


@pytest.mark.slow
@settings(max_examples=6, deadline=20_000, suppress_health_check=[HealthCheck.function_scoped_fixture],
          derandomize=True)
@given(seconds=st.sampled_from([1 / 44100, 0.01, 0.5, 3.0]), rate=st.sampled_from([8000, 44100, 96000]),
       kind=st.sampled_from(["silence", "noise", "full-scale square", "tone", "dc"]))
def test_prepare_takes_any_decodable_input(tmp_path_factory, seconds, rate, kind):
    from melisma.prepare.pipeline import PrepareSettings, prepare_dataset

    tmp = tmp_path_factory.mktemp("prep")
    n = max(1, int(seconds * rate))
    t = np.arange(n) / rate
    rng = np.random.default_rng(0)
    audio = {"silence": np.zeros(n), "noise": rng.uniform(-1, 1, n), "full-scale square": np.sign(np.sin(2 * np.pi
             * 220 * t)), "tone": 0.3 * np.sin(2 * np.pi * 220 * t), "dc": np.full(n, 0.5)}[kind].astype(np.float32)
    src = tmp / "in.wav"
    src.write_bytes(wav_header(rate, 1, 32, 3, audio.nbytes) + audio.tobytes())
    before = src.read_bytes()
    out = tmp / "ds"
    try:
        ds = prepare_dataset([src], out, PrepareSettings(separate="none"))
        assert (out / "manifest.json").is_file() and ds.kept
    except MelismaError as exc:
        assert "\n" not in str(exc) and not out.exists()  # refused: nothing half-written
    assert src.read_bytes() == before


@pytest.fixture(scope="module")
def pack_bytes(tmp_path_factory):
    from singer_standins import tiny_pack

    return tiny_pack(tmp_path_factory.mktemp("pack") / "v.melisma").read_bytes()


@pytest.mark.slow
@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 255)), max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 10**7)))
def test_damaged_voice_packs(tmp_path, pack_bytes, flips, cut):
    from melisma.singer.voicepack import load_pack

    data = bytearray(pack_bytes)
    for where, value in flips:
        data[where % len(data)] = value
    path = tmp_path / "x.melisma"
    path.write_bytes(bytes(data[:cut] if cut is not None else data))
    try:
        pack = load_pack(path)
        assert pack.build_student() is not None
    except MelismaError as exc:
        assert "\n" not in str(exc)


SIZES = st.one_of(st.integers(-3, 300), st.sampled_from([0, 2**31, 10**12, -(2**63)]), st.floats(), st.text(max_size=3),
                  st.none(), st.booleans())


@pytest.mark.slow
@FUZZ
@given(config=st.dictionaries(st.sampled_from(["content_dim", "n_singers", "n_mels", "hidden", "residual_channels",
                                               "layers", "dilation_cycle", "kernel_size", "prior_layers",
                                               "harmonic_template", "sigma_data", "other"]), SIZES, max_size=6))
def test_voice_pack_configs_with_absurd_sizes(tmp_path, pack_bytes, config):
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from melisma.singer.voicepack import load_pack

    src = tmp_path / "src.melisma"
    src.write_bytes(pack_bytes)
    with safe_open(str(src), framework="pt") as f:
        header = json.loads(f.metadata()["melisma"])
    header["config"].update(config)
    path = tmp_path / "x.melisma"
    save_file(load_file(str(src)), str(path), metadata={"melisma": json.dumps(header)})
    tracemalloc.start()
    try:
        load_pack(path)
    except MelismaError as exc:
        assert "\n" not in str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_BOUND
