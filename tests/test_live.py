"""``melisma live``: the stream callback, commands and devices without audio, then the real command on a real
PortAudio stream through JACK's dummy driver (no sound card): a JACK client plays a tone into melisma's input
port, melisma's output port is recorded by jack_rec, and ``--record`` keeps what melisma output.

Every converter here comes from ``live_standin.make_converter`` (the swap point for the real engine)."""

from __future__ import annotations

import io
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from live_standin import REAL_ENGINE, VOICE, make_converter

from melisma.errors import MelismaError
from melisma.live import device

SR = 44_100
BLOCK = 882  # 20 ms
TESTS = Path(__file__).resolve().parent
RUNNER = [sys.executable, str(TESTS / "live_runner.py")]
SUMMARY = re.compile(r"(\d+) blocks \(([\d.]+) s of audio\) in ([\d.]+) s")
OK = SimpleNamespace(input_overflow=False, output_underflow=False)


class Stop(Exception):
    pass


class Abort(Exception):
    pass


def _tone(n: int, hz: float = 220.0, start: int = 0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * (start + np.arange(n)) / SR)).astype(np.float32)


def _run_blocks(callback, blocks: list[np.ndarray], status=OK) -> np.ndarray:
    """Feed (BLOCK,) input blocks to a stream callback as PortAudio would; the output, concatenated."""
    out = []
    for block in blocks:
        outdata = np.full((BLOCK, 1), 9.0, dtype=np.float32)
        callback(block[:, None].copy(), outdata, BLOCK, None, status)
        out.append(outdata[:, 0].copy())
    return np.concatenate(out)


class Spy:
    """Delegates to a converter and records the thread and arguments of every call that changes it."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[tuple[str, object, str]] = []
        for name in ("sample_rate", "latency_samples", "block_size", "singers"):
            setattr(self, name, getattr(inner, name))

    def process(self, block):
        self.calls.append(("process", None, threading.current_thread().name))
        return self.inner.process(block)

    def set_transpose(self, semitones):
        self.calls.append(("set_transpose", semitones, threading.current_thread().name))
        self.inner.set_transpose(semitones)

    def set_singer(self, spec):
        self.calls.append(("set_singer", spec, threading.current_thread().name))
        self.inner.set_singer(spec)


def _session(converter, **kw):
    controls = device.LiveControls(**kw)
    stats = device.LiveStats(block_s=BLOCK / SR)
    return controls, stats


# ------------------------------------------------------------------------------------- no audio needed


def test_callback_runs_the_converter_with_gains_and_counts_blocks():
    converter = make_converter(BLOCK)
    controls, stats = _session(converter, gain_in=0.5, gain_out=2.0)
    recorded: list[np.ndarray] = []
    callback = device.make_callback(converter, controls, stats, recorded.append, stop=Stop, abort=Abort)
    x = _tone(20 * BLOCK)
    y = _run_blocks(callback, np.split(x, 20))
    assert stats.blocks == 20 and stats.late == 0 and stats.missed == 0
    assert np.array_equal(np.concatenate(recorded), y)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    lat = converter.latency_samples
    assert np.abs(y[lat + BLOCK:]).max() > 0.05  # signal comes out once the latency has passed
    if not REAL_ENGINE:  # the stand-in: input * 0.5 * 2, one block late
        assert np.allclose(y[lat:], x[:-lat], atol=1e-6) and not y[:lat].any()
    controls.gain_out = 0.0
    assert not _run_blocks(callback, np.split(x, 20)[:3]).any()


def test_commands_are_applied_by_the_audio_thread_between_blocks():
    spy = Spy(make_converter(BLOCK))
    controls, stats = _session(spy)
    assert device.apply_command(("transpose", 2.0), spy, controls) is False
    assert device.apply_command(device.parse_command(f"v {spy.singers[-1]}"), spy, controls) is False
    assert [c[0] for c in spy.calls] == []  # queued, not called from the command thread
    callback = device.make_callback(spy, controls, stats, stop=Stop, abort=Abort)
    worker = threading.Thread(target=_run_blocks, args=(callback, [_tone(BLOCK)]), name="audio")
    worker.start()
    worker.join()
    assert [c[:2] for c in spy.calls] == [("set_transpose", 2.0), ("set_singer", spy.singers[-1]),
                                          ("process", None)]
    assert {c[2] for c in spy.calls} == {"audio"}
    assert (controls.transpose, controls.singer) == (2.0, spy.singers[-1])


def test_a_singer_the_voice_lacks_is_refused_before_it_reaches_the_converter():
    spy = Spy(make_converter(BLOCK))
    controls, _ = _session(spy)
    with pytest.raises(MelismaError, match="nobody"):
        device.apply_command(("singer", "nobody"), spy, controls)
    assert controls.pending.empty() and controls.singer is None


@pytest.mark.parametrize(("line", "parsed"), [
    ("t +2", ("transpose", 2.0)), ("t -1.5", ("transpose", -1.5)), ("t 0", ("transpose", 0.0)),
    ("v alto", ("singer", "alto")), ("v a:0.6,b:0.4", ("singer", "a:0.6,b:0.4")), ("v", ("singer", None)),
    ("g in 0.8", ("gain_in", 0.8)), ("g out 1.2", ("gain_out", 1.2)), ("q", ("quit", None)), ("  ", None)])
def test_parse_command(line, parsed):
    assert device.parse_command(line) == parsed


@pytest.mark.parametrize("line", ["t", "t up", "t 99", "g in", "g left 1", "g out -1", "g out nan", "x", "q now"])
def test_parse_command_refuses_with_one_line(line):
    with pytest.raises(MelismaError) as err:
        device.parse_command(line)
    assert "\n" not in str(err.value)


def test_late_blocks_and_xrun_flags_are_missed_deadlines():
    class Slow:
        def __init__(self, inner):
            self.inner = inner
            self.__dict__.update({k: getattr(inner, k) for k in ("sample_rate", "latency_samples", "block_size")})

        def process(self, block):
            time.sleep(1.5 * BLOCK / SR)
            return self.inner.process(block)

    slow = Slow(make_converter(BLOCK))
    controls, stats = _session(slow)
    callback = device.make_callback(slow, controls, stats, stop=Stop, abort=Abort)
    _run_blocks(callback, [_tone(BLOCK)] * 2)
    _run_blocks(callback, [_tone(BLOCK)], SimpleNamespace(input_overflow=True, output_underflow=True))
    assert (stats.late, stats.input_overflows, stats.output_underflows, stats.missed) == (3, 1, 1, 5)
    p50, p99 = stats.percentiles()
    assert 1.4 * BLOCK / SR < p50 <= p99 <= stats.worst_s
    assert "CPU p50 1" in device.status_line(stats, controls, 40.0)  # 150 % and more


def test_callback_stops_after_max_blocks_and_aborts_on_a_broken_converter():
    converter = make_converter(BLOCK)
    controls, stats = _session(converter)
    callback = device.make_callback(converter, controls, stats, max_blocks=3, stop=Stop, abort=Abort)
    _run_blocks(callback, [_tone(BLOCK)] * 2)
    with pytest.raises(Stop):
        _run_blocks(callback, [_tone(BLOCK)])
    assert stats.blocks == 3

    class Broken(Spy):
        def process(self, block):
            return np.full(BLOCK, np.nan, dtype=np.float32)

    broken = Broken(converter)
    controls, stats = _session(broken)
    outdata = np.ones((BLOCK, 1), dtype=np.float32)
    with pytest.raises(Abort):
        device.make_callback(broken, controls, stats, stop=Stop, abort=Abort)(
            _tone(BLOCK)[:, None], outdata, BLOCK, None, OK)
    assert not outdata.any() and "NaN" in str(controls.error) and stats.blocks == 0


DEVICES = [{"index": 0, "name": "HDA Intel: ALC892 Analog", "max_input_channels": 2, "max_output_channels": 2},
           {"index": 1, "name": "HDA Intel: HDMI 0", "max_input_channels": 0, "max_output_channels": 8},
           {"index": 2, "name": "USB Mic", "max_input_channels": 1, "max_output_channels": 0}]


def test_resolve_device_by_id_name_or_default():
    assert device.resolve_device("2", "input", DEVICES, 0) == 2
    assert device.resolve_device("usb mic", "input", DEVICES, 0) == 2
    assert device.resolve_device("hdmi", "output", DEVICES, 0) == 1
    assert device.resolve_device("HDA", "input", DEVICES, 0) == 0  # the HDMI device has no input: not a match
    assert device.resolve_device(None, "output", DEVICES, 1) == 1
    for spec, kind, default, message in [("HDA", "output", 0, "several"), ("nosuch", "input", 0, "no input device"),
                                         ("7", "input", 0, "no input device '7'"), ("1", "input", 0, "no input"),
                                         (None, "input", -1, "no default input")]:
        with pytest.raises(MelismaError, match=message):
            device.resolve_device(spec, kind, DEVICES, default)


def test_a_failed_session_leaves_no_recording(tmp_path):
    out = tmp_path / "take.wav"
    with pytest.raises(RuntimeError), device.recording(out, SR) as recorder:
        recorder.put(_tone(BLOCK))
        raise RuntimeError("stream died")
    assert list(tmp_path.iterdir()) == []
    with device.recording(out, SR) as recorder:
        for i in range(3):
            recorder.put(_tone(BLOCK, start=i * BLOCK))
    audio, sr = sf.read(out, dtype="float32")
    assert sr == SR and np.allclose(audio, _tone(3 * BLOCK), atol=1e-4)


def _portaudio_missing() -> str | None:
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"sounddevice / PortAudio not installed ({exc}): pip install sounddevice; apt-get install libportaudio2"
    return None


def _melisma(*args: str, env: dict | None = None, runner: bool = False, timeout: float = 60):
    command = RUNNER if runner else [sys.executable, "-m", "melisma", "live"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "JACK_NO_START_SERVER": "1", **(env or {})})


def test_list_devices_and_a_missing_device_without_any_sound_server():
    if reason := _portaudio_missing():
        pytest.skip(reason)
    listed = _melisma("--list-devices")
    assert listed.returncode == 0 and "host APIs: ALSA" in listed.stdout, listed.stderr
    missing = _melisma("-v", "X", "--input-device", "nosuch")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == ["melisma: no input device 'nosuch' (melisma live --list-devices "
                                                   "lists them)"]
    bad = _melisma("-v", "X", "--block-ms", "0.1")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--block-ms" in bad.stderr


# ------------------------------------------------------------------ a real stream: JACK's dummy driver


def _jack(env: dict, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout)


def _wait_for_port(env: dict, pattern: str, timeout: float = 15) -> str:
    """The name of the first JACK port matching ``pattern`` (a regex), waiting for it to appear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ports = _jack(env, "jack_lsp").stdout.split("\n")
        found = [p for p in ports if re.fullmatch(pattern, p.strip())]
        if found:
            return found[0].strip()
        time.sleep(0.05)
    raise AssertionError(f"no JACK port {pattern} after {timeout} s; ports: {ports}")


@pytest.fixture(scope="module")
def jack():
    """A private JACK server on the dummy driver (44.1 kHz, 256-frame periods, paced by the wall clock) with
    jack_simple_client playing its 220.5 Hz tone (a 200-sample table) on port tone:output1. Yields the
    environment a client needs to reach it (JACK_DEFAULT_SERVER names the server)."""
    if reason := _portaudio_missing():
        pytest.skip(reason)
    tools = ("jackd", "jack_lsp", "jack_connect", "jack_simple_client", "jack_rec")
    if missing := [t for t in tools if shutil.which(t) is None]:
        pytest.skip(f"JACK not installed ({', '.join(missing)} missing): apt-get install jackd2")
    name = f"melisma-test-{os.getpid()}"
    env = {**os.environ, "JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1", "JACK_NO_AUDIO_RESERVATION": "1"}
    server = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", str(SR), "-p", "256"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tone = None
    try:
        _wait_for_port(env, "system:playback_1")
        tone = subprocess.Popen(["jack_simple_client", "tone", name], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _wait_for_port(env, "tone:output1")
        yield env
    finally:
        for process in (tone, server):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)


def _feed_and_tap(env: dict, tap: Path, tap_s: float) -> subprocess.Popen:
    """Once melisma's stream is up: the tone into its input port, jack_rec on its output port for tap_s s."""
    melisma_in = _wait_for_port(env, r"PortAudio[^:]*:in_0")
    connected = _jack(env, "jack_connect", "tone:output1", melisma_in)
    assert connected.returncode == 0, connected.stderr
    return subprocess.Popen(["jack_rec", "-f", str(tap), "-d", str(tap_s), melisma_in.replace(":in_0", ":out_0")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * SR / len(x))


@pytest.mark.slow
def test_portaudio_lists_the_jack_device(jack):
    listed = _melisma("--list-devices", env=jack)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"JACK Audio Connection Kit \(\d+ devices?\)", listed.stdout), listed.stdout
    assert re.search(r"^\s+\d+<>system\s+JACK Audio Connection Kit\s+2\s+2\s+44100$", listed.stdout, re.M), listed.stdout


@pytest.mark.slow
def test_live_on_a_jack_stream_converts_the_tone_it_is_fed(jack, tmp_path):
    seconds, record, tap = 3.0, tmp_path / "out.wav", tmp_path / "tap.wav"
    process = subprocess.Popen([*RUNNER, "-v", VOICE, "--seconds", str(seconds), "--record", str(record),
                                "--input-device", "system", "--output-device", "0"], env=jack,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rec = _feed_and_tap(jack, tap, 1)
    out, err = process.communicate(timeout=60)
    rec.wait(timeout=30)
    assert process.returncode == 0, err
    blocks, audio_s, wall_s = (float(g) for g in SUMMARY.search(err).groups())
    assert blocks == np.ceil(seconds * SR / BLOCK) and audio_s == pytest.approx(seconds, abs=0.02)
    assert wall_s == pytest.approx(seconds, rel=0.2), err  # JACK's clock paced the callbacks
    assert "missed deadlines" in err and "latency" in err
    audio, sr = sf.read(record, dtype="float32")
    assert sr == SR and len(audio) == blocks * BLOCK
    last = audio[-SR:]  # the tone was connected within the first second or so
    assert np.sqrt(np.mean(last ** 2)) > 0.02, "the recording is silent: the tone did not come through"
    tapped, _ = sf.read(tap, dtype="float32")
    assert len(tapped) >= 0.9 * SR and np.abs(tapped).max() > 0.05, "nothing reached melisma's JACK output port"
    if not REAL_ENGINE:  # the stand-in passes jack_simple_client's 220.5 Hz tone (amplitude 0.2) through
        assert _dominant_hz(last) == pytest.approx(220.5, abs=2) and np.abs(last).max() == pytest.approx(0.2, abs=0.01)
        assert _dominant_hz(tapped[: SR // 2]) == pytest.approx(220.5, abs=3)


@pytest.mark.slow
def test_live_stops_cleanly_on_ctrl_c_and_on_q(jack, tmp_path):
    record = tmp_path / "take.wav"
    process = subprocess.Popen([*RUNNER, "-v", VOICE, "--record", str(record)], env=jack,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_port(jack, r"PortAudio[^:]*:in_0")
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    blocks = int(SUMMARY.search(err).group(1))
    assert blocks > 10 and "Traceback" not in err
    assert len(sf.read(record)[0]) == blocks * BLOCK

    quitting = subprocess.run([*RUNNER, "-v", VOICE, "--seconds", "60"], env=jack, input="t +2\nq\n",
                              capture_output=True, text=True, timeout=30)
    assert quitting.returncode == 0, quitting.stderr
    assert int(SUMMARY.search(quitting.stderr).group(1)) < 60 * SR / BLOCK / 2


def test_run_live_refuses_a_converter_of_another_block_size():
    with pytest.raises(MelismaError, match="blocks of"):
        device.run_live(make_converter(BLOCK), 0, 0, BLOCK + 1)


@pytest.mark.parametrize(("failure", "message"), [
    (ImportError("No module named 'sounddevice'"), "pip install 'melisma\\[live\\]'"),
    (OSError("PortAudio library not found"), "PortAudio library not found.*libportaudio2")])
def test_missing_sounddevice_or_portaudio_is_one_line(monkeypatch, capsys, failure, message):
    import builtins

    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "sounddevice":
            raise failure
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing_import)
    from melisma.cli import main

    assert main(["live", "--list-devices"]) == 3  # MissingDependencyError, as for every optional package
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err


class FakeStream:
    """sounddevice.Stream's part that run_live uses, driven by a thread instead of a sound card: it calls the
    callback with ``source`` blocks every ``pace_s`` seconds until the callback stops it (``pace_s`` None: never)."""

    source = np.zeros(0, dtype=np.float32)
    pace_s: float | None = 0.0

    def __init__(self, *, device, samplerate, blocksize, dtype, channels, latency, callback):
        assert (samplerate, dtype, channels, latency) == (SR, "float32", 1, "low")
        self.blocksize, self.callback, self.latency = blocksize, callback, (0.001, 0.002)
        self.active, self._halt = False, threading.Event()

    def __enter__(self):
        self.active = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._halt.set()
        self._thread.join()
        self.active = False

    def _run(self):
        if self.pace_s is None:  # a stalled device: the stream is active, no callback ever comes
            self._halt.wait()
            return
        i = 0
        while not self._halt.is_set():
            block = np.resize(self.source, (i + 1) * self.blocksize)[-self.blocksize:]
            outdata = np.zeros((self.blocksize, 1), dtype=np.float32)
            try:
                self.callback(block[:, None].copy(), outdata, self.blocksize, None, OK)
            except (Stop, Abort):
                break
            i += 1
            time.sleep(self.pace_s)
        self.active = False


@pytest.fixture
def fake_sounddevice(monkeypatch):
    """run_live on FakeStream: no PortAudio needed."""
    fake = SimpleNamespace(Stream=FakeStream, CallbackStop=Stop, CallbackAbort=Abort, PortAudioError=OSError)
    monkeypatch.setattr(device, "load_sounddevice", lambda: fake)
    return FakeStream


def test_run_live_records_exactly_the_blocks_it_ran_and_takes_commands(fake_sounddevice, monkeypatch, tmp_path):
    monkeypatch.setattr(FakeStream, "source", _tone(BLOCK * 7, hz=441.0))
    monkeypatch.setattr(FakeStream, "pace_s", 0.002)
    spy = Spy(make_converter(BLOCK))
    commands: queue.Queue = queue.Queue()
    for line in ("g out 0.5", "nonsense", f"v {spy.singers[0]}", "t -3"):
        commands.put(line)
    status = io.StringIO()
    summary = device.run_live(spy, 0, 0, BLOCK, status_every_s=0.01, commands=commands, seconds=1.0,
                              record=tmp_path / "take.flac", out=status)
    assert summary.blocks == 50 and summary.latency_ms == pytest.approx(1000 * (spy.latency_samples / SR + 0.003))
    audio, sr = sf.read(tmp_path / "take.flac", dtype="float32")
    assert sr == SR and len(audio) == 50 * BLOCK and np.abs(audio).max() > 0.01
    assert ("set_transpose", -3.0) in [c[:2] for c in spy.calls]
    assert "melisma: unknown command 'nonsense'" in status.getvalue()
    assert "transpose -3 | gain 1/0.5" in status.getvalue().splitlines()[-1]


def test_run_live_gives_up_on_a_stalled_device_and_writes_no_recording(fake_sounddevice, monkeypatch, tmp_path):
    monkeypatch.setattr(FakeStream, "pace_s", None)
    monkeypatch.setattr(device, "STALL_S", 0.2)
    with pytest.raises(MelismaError, match="ran only 0 blocks"):
        device.run_live(make_converter(BLOCK), 0, 0, BLOCK, seconds=0.1, record=tmp_path / "take.wav",
                        out=io.StringIO())
    assert list(tmp_path.iterdir()) == []


def test_a_converter_failing_mid_stream_is_raised_and_leaves_no_recording(fake_sounddevice, tmp_path):
    class FailsLater(Spy):
        def process(self, block):
            if len(self.calls) > 5:
                raise ValueError("engine bug")
            return super().process(block)

    with pytest.raises(ValueError, match="engine bug"):
        device.run_live(FailsLater(make_converter(BLOCK)), 0, 0, BLOCK, record=tmp_path / "take.wav",
                        out=io.StringIO())
    assert list(tmp_path.iterdir()) == []


def test_run_live_stops_on_the_stop_event_and_on_q(fake_sounddevice, monkeypatch):
    monkeypatch.setattr(FakeStream, "pace_s", 0.001)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    assert device.run_live(make_converter(BLOCK), 0, 0, BLOCK, stop_event=stop, out=io.StringIO()).blocks > 0
    commands: queue.Queue = queue.Queue()
    commands.put("q")
    started = time.perf_counter()
    device.run_live(make_converter(BLOCK), 0, 0, BLOCK, commands=commands, out=io.StringIO())
    assert time.perf_counter() - started < 2
