"""``melisma live``'s sound-card loop: a duplex PortAudio stream (sounddevice) whose callback runs a streaming
converter block by block, with compute-time statistics, a live status line and commands typed while it runs.

The converter (``melisma.live.engine.StreamConverter``) is only used through the ``Converter`` protocol below,
so this module imports neither torch nor the engine. Every change to the converter (transpose, singer) is queued
and applied by the audio thread between two blocks, so the converter is never called from two threads at once.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import numpy as np

from melisma.errors import MelismaError, MissingDependencyError
from melisma.singer.options import MAX_TRANSPOSE, singer_mix

STREAM_RATE = 44_100  # Hz, the rate the stream is opened at; the converter must run at it too
HISTORY = 1 << 16  # compute times kept for the percentiles: the last 65536 blocks (22 min of 20 ms blocks)
MAX_GAIN = 10.0  # +20 dB, the most a gain command or option may ask for
STALL_S = 5.0  # with --seconds: give up when the device is this far behind the wall clock


class Converter(Protocol):
    """What the loop needs of a streaming converter: ``process`` maps a ``(block_size,)`` float32 block at
    ``sample_rate`` Hz to the next ``(block_size,)`` output block, ``latency_samples`` behind the input."""

    sample_rate: int
    latency_samples: int
    block_size: int
    singers: list[str]

    def process(self, block: np.ndarray) -> np.ndarray: ...

    def set_transpose(self, semitones: float) -> None: ...

    def set_singer(self, spec: str | None) -> None: ...


def load_sounddevice() -> Any:
    """The ``sounddevice`` module; a missing package or PortAudio library becomes one line."""
    try:
        import sounddevice
    except ImportError:
        raise MissingDependencyError("melisma live needs the sounddevice package: "
                                     "pip install 'melisma[live]'") from None
    except OSError as exc:  # sounddevice's import raises OSError('PortAudio library not found')
        raise MissingDependencyError(f"melisma live needs the PortAudio library ({exc}): "
                                     "apt-get install libportaudio2") from None
    return sounddevice


# ---------------------------------------------------------------------------------------------- devices


def list_devices() -> str:
    """A printable table of PortAudio's devices (id, name, host API, channels, default rate) and host APIs."""
    sd = load_sounddevice()
    apis = sd.query_hostapis()
    default_in, default_out = sd.default.device
    rows = [f"{'id':>3}  {'name':<40} {'host API':<26} {'in':>3} {'out':>3} {'rate':>6}"]
    for d in sd.query_devices():
        mark = ("<" if d["index"] == default_in else " ") + (">" if d["index"] == default_out else " ")
        rows.append(f"{d['index']:>3}{mark}{d['name'][:40]:<40} {apis[d['hostapi']]['name'][:26]:<26} "
                    f"{d['max_input_channels']:>3} {d['max_output_channels']:>3} {d['default_samplerate']:>6.0f}")
    if len(rows) == 1:
        rows.append("     (no audio devices found)")
    rows.append("host APIs: " + ", ".join(f"{a['name']} ({_count(len(a['devices']), 'device')})" for a in apis))
    rows.append("< default input, > default output; pass an id or part of a name to --input-device / --output-device")
    return "\n".join(rows)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def resolve_device(spec: str | int | None, kind: str, devices: list[dict], default: int) -> int:
    """The index of the ``kind`` ("input" / "output") device ``spec`` names: an id, a name or a unique part of
    one (case-insensitive), or None for PortAudio's ``default`` (-1: none). MelismaError when none matches."""
    channels = f"max_{kind}_channels"
    if spec is None or str(spec).strip() == "":
        if default < 0:
            raise MelismaError(f"no default {kind} device; choose one with --{kind}-device "
                               "(melisma live --list-devices lists them)")
        return default
    text = str(spec).strip()
    if text.isdigit():
        found = [d for d in devices if d["index"] == int(text)]
    else:
        usable = [d for d in devices if d[channels] > 0]
        found = ([d for d in usable if d["name"].lower() == text.lower()]
                 or [d for d in usable if text.lower() in d["name"].lower()])
    if not found:
        raise MelismaError(f"no {kind} device {text!r} (melisma live --list-devices lists them)")
    if len(found) > 1:
        names = ", ".join(f"{d['index']}: {d['name']}" for d in found)
        raise MelismaError(f"{kind} device {text!r} matches several ({names}); give its id")
    if found[0][channels] < 1:
        raise MelismaError(f"device {found[0]['index']} ({found[0]['name']}) has no {kind} channels")
    return int(found[0]["index"])


def resolve_devices(input_spec: str | int | None, output_spec: str | int | None) -> tuple[int, int]:
    """(input, output) device indices for the options, checked to run mono float32 at STREAM_RATE."""
    sd = load_sounddevice()
    devices = list(sd.query_devices())
    default_in, default_out = (int(i) for i in sd.default.device)
    ids = (resolve_device(input_spec, "input", devices, default_in),
           resolve_device(output_spec, "output", devices, default_out))
    try:
        sd.check_input_settings(device=ids[0], channels=1, dtype="float32", samplerate=STREAM_RATE)
        sd.check_output_settings(device=ids[1], channels=1, dtype="float32", samplerate=STREAM_RATE)
    except (sd.PortAudioError, ValueError) as exc:
        raise MelismaError(f"audio devices {ids[0]} / {ids[1]} cannot run mono at {STREAM_RATE} Hz: {exc}") from None
    return ids


# ------------------------------------------------------------------------------------ state of a session


@dataclass
class LiveStats:
    """Counters of a session. The audio thread alone writes them; the status line reads them."""

    block_s: float  # seconds one block lasts: the callback's deadline
    blocks: int = 0
    late: int = 0  # blocks whose compute took longer than block_s
    input_overflows: int = 0  # PortAudio's status flags: input lost / output not delivered in time
    output_underflows: int = 0
    worst_s: float = 0.0
    compute_s: np.ndarray = field(default_factory=lambda: np.zeros(HISTORY))  # ring of the last HISTORY blocks

    def add(self, seconds: float) -> None:
        """One block done in ``seconds`` of compute."""
        self.compute_s[self.blocks % HISTORY] = seconds
        self.blocks += 1
        self.worst_s = max(self.worst_s, seconds)
        self.late += seconds > self.block_s

    @property
    def missed(self) -> int:
        """Missed deadlines: late blocks plus the blocks PortAudio flagged as overflow or underflow."""
        return self.late + self.input_overflows + self.output_underflows

    def percentiles(self) -> tuple[float, float]:
        """(p50, p99) of the compute time per block, seconds, over the last HISTORY blocks."""
        n = min(self.blocks, HISTORY)
        if n == 0:
            return 0.0, 0.0
        p50, p99 = np.percentile(self.compute_s[:n], [50, 99])
        return float(p50), float(p99)


@dataclass
class LiveControls:
    """What the commands change. Gains are read by every callback; converter changes wait in ``pending`` for
    the audio thread, which applies them between blocks."""

    gain_in: float = 1.0
    gain_out: float = 1.0
    transpose: float = 0.0
    singer: str | None = None
    pending: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    error: BaseException | None = None  # the callback's failure, re-raised by the main thread


@dataclass(frozen=True)
class LiveSummary:
    """A finished session: blocks run, wall time, compute-time statistics (seconds) and missed deadlines."""

    blocks: int
    block_size: int
    wall_s: float
    compute_p50_s: float
    compute_p99_s: float
    compute_max_s: float
    late: int
    input_overflows: int
    output_underflows: int
    latency_ms: float

    def line(self) -> str:
        block_ms = 1000 * self.block_size / STREAM_RATE
        return (f"{self.blocks} blocks ({self.blocks * self.block_size / STREAM_RATE:.2f} s of audio) in "
                f"{self.wall_s:.2f} s; compute per {block_ms:.1f} ms block: p50 {1000 * self.compute_p50_s:.2f} ms, "
                f"p99 {1000 * self.compute_p99_s:.2f} ms, max {1000 * self.compute_max_s:.2f} ms; missed deadlines "
                f"{self.late + self.input_overflows + self.output_underflows} (late {self.late}, input overflows "
                f"{self.input_overflows}, output underflows {self.output_underflows}); latency {self.latency_ms:.1f} ms")


def summarise(stats: LiveStats, wall_s: float, latency_ms: float) -> LiveSummary:
    p50, p99 = stats.percentiles()
    return LiveSummary(stats.blocks, round(stats.block_s * STREAM_RATE), wall_s, p50, p99, stats.worst_s,
                       stats.late, stats.input_overflows, stats.output_underflows, latency_ms)


def status_line(stats: LiveStats, controls: LiveControls, latency_ms: float) -> str:
    """The live status: latency, CPU load (compute / block duration), missed deadlines, current settings."""
    p50, p99 = stats.percentiles()
    load = [f"{100 * s / stats.block_s:.0f}%" for s in (p50, p99, stats.worst_s)]
    return (f"latency {latency_ms:.0f} ms | CPU p50 {load[0]} p99 {load[1]} max {load[2]} | missed {stats.missed} "
            f"of {stats.blocks} | transpose {controls.transpose:+g} | gain {controls.gain_in:g}/{controls.gain_out:g}"
            f" | singer {controls.singer or '-'}")


# -------------------------------------------------------------------------------------------- commands


HELP = "commands: t N (transpose, semitones), v SINGER (or a:0.6,b:0.4), g in|out GAIN, q (quit)"


def parse_command(line: str) -> tuple[str, Any] | None:
    """A typed command -> (what, value): ``t +2`` -> ("transpose", 2.0) (absolute; ``t 0`` resets),
    ``v NAME`` -> ("singer", "NAME") (``v`` alone: the default singer), ``g in 0.8`` -> ("gain_in", 0.8),
    ``g out 1.2`` -> ("gain_out", 1.2), ``q`` -> ("quit", None). None for a blank line; MelismaError otherwise."""
    words = line.split()
    if not words:
        return None
    head, rest = words[0].lower(), words[1:]
    if head in ("q", "quit", "exit") and not rest:
        return "quit", None
    if head == "v" and len(rest) <= 1:
        return "singer", rest[0] if rest else None
    if head == "t" and len(rest) == 1:
        return "transpose", _number(rest[0], -MAX_TRANSPOSE, MAX_TRANSPOSE, "transpose")
    if head == "g" and len(rest) == 2 and rest[0] in ("in", "out"):
        return f"gain_{rest[0]}", _number(rest[1], 0.0, MAX_GAIN, "gain")
    raise MelismaError(f"unknown command {line.strip()!r}; {HELP}")


def _number(text: str, low: float, high: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise MelismaError(f"{what} {text!r} is not a number") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise MelismaError(f"{what} {text} is outside {low:g} .. {high:g}")
    return value


def apply_command(command: tuple[str, Any], converter: Converter, controls: LiveControls) -> bool:
    """Carry out a parsed command (converter changes are queued for the audio thread); True means quit.
    A singer not in ``converter.singers`` is refused here, before anything is queued."""
    what, value = command
    if what == "quit":
        return True
    if what == "transpose":
        controls.transpose = value
        controls.pending.put(lambda: converter.set_transpose(value))
    elif what == "singer":
        singer_mix(value, list(converter.singers))
        controls.singer = value
        controls.pending.put(lambda: converter.set_singer(value))
    else:
        setattr(controls, what, value)
    return False


def read_commands(stream: TextIO, commands: queue.Queue) -> threading.Thread:
    """A daemon thread that puts every line of ``stream`` (stdin) into ``commands``; it ends at end of file."""
    def loop() -> None:
        for line in stream:
            commands.put(line)

    thread = threading.Thread(target=loop, name="melisma-live-commands", daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------------------- the callback


def make_callback(converter: Converter, controls: LiveControls, stats: LiveStats,
                  record: Callable[[np.ndarray], None] | None = None, max_blocks: int | None = None,
                  stop: type[BaseException] = StopIteration, abort: type[BaseException] = RuntimeError) -> Callable:
    """The stream callback ``(indata (frames, 1), outdata (frames, 1), frames, time, status)``: input * gain_in
    -> converter.process -> * gain_out -> output; the compute time of each block goes to ``stats``; the output
    block to ``record``. It raises ``stop`` (sounddevice.CallbackStop) after ``max_blocks`` blocks and ``abort``
    (sounddevice.CallbackAbort) when the converter fails, leaving the exception in ``controls.error``."""
    def callback(indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        start = time.perf_counter()
        stats.input_overflows += bool(status.input_overflow)
        stats.output_underflows += bool(status.output_underflow)
        try:
            _apply_pending(controls)
            out = converter.process(indata[:, 0] * np.float32(controls.gain_in))
            _check_block(out, frames)
            np.multiply(out, np.float32(controls.gain_out), out=outdata[:, 0], casting="unsafe")
        except Exception as exc:
            outdata.fill(0)
            controls.error = exc
            raise abort from exc
        if record is not None:
            record(outdata[:, 0].copy())
        stats.add(time.perf_counter() - start)
        if max_blocks is not None and stats.blocks >= max_blocks:
            raise stop

    return callback


def _apply_pending(controls: LiveControls) -> None:
    while True:
        try:
            change = controls.pending.get_nowait()
        except queue.Empty:
            return
        change()


def _check_block(out: np.ndarray, frames: int) -> None:
    if out.shape != (frames,):
        raise MelismaError(f"the converter returned a block of shape {out.shape}, expected ({frames},)")
    if not np.isfinite(out).all():
        raise MelismaError("the converter returned NaN or infinite samples")


# ------------------------------------------------------------------------------------------- recording


class Recorder:
    """Writes the blocks it is given to an open sound file from its own thread (the audio thread only queues)."""

    def __init__(self, sound_file: Any):
        self._file = sound_file
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="melisma-live-record", daemon=True)
        self._thread.start()

    def put(self, block: np.ndarray) -> None:
        self._queue.put(block)

    def finish(self) -> None:
        """Write what is queued and stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _write(self) -> None:
        while (block := self._queue.get()) is not None:
            self._file.write(np.clip(block, -1.0, 1.0))


@contextmanager
def recording(path: str | Path, sample_rate: int) -> Iterator[Recorder]:
    """A Recorder into ``path`` (format from the suffix), which appears whole when the block ends without error
    and not at all otherwise (``melisma.atomic``)."""
    import soundfile as sf

    from melisma.atomic import atomic_path

    fmt = Path(path).suffix.lstrip(".").upper() or "WAV"
    with atomic_path(path) as tmp, sf.SoundFile(tmp, "w", sample_rate, 1, format=fmt) as sound_file:
        recorder = Recorder(sound_file)
        try:
            yield recorder
        finally:
            recorder.finish()


# ------------------------------------------------------------------------------------------- the loop


def run_live(converter: Converter, input_device: int | None, output_device: int | None, block_size: int,
             gain_in: float = 1.0, gain_out: float = 1.0, status_every_s: float = 0.5,
             stop_event: threading.Event | None = None, commands: queue.Queue | None = None, *,
             seconds: float | None = None, record: str | Path | None = None,
             out: TextIO | None = None) -> LiveSummary:
    """Run ``converter`` between the sound card's input and output until ``stop_event`` is set, a ``q``
    command arrives on ``commands`` (lines, see ``parse_command``), Ctrl-C, or ``seconds`` of audio have
    passed (counted in blocks, so paced by the device's clock). A status line goes to ``out`` (stderr) every
    ``status_every_s`` seconds (0: none); ``record`` gets every output block. Returns the session's summary."""
    _check_converter(converter, block_size)
    sd = load_sounddevice()
    out = out if out is not None else sys.stderr
    stats = LiveStats(block_s=block_size / STREAM_RATE)
    controls = LiveControls(gain_in=gain_in, gain_out=gain_out)
    stop_event = stop_event if stop_event is not None else threading.Event()
    commands = commands if commands is not None else queue.Queue()
    max_blocks = math.ceil(seconds * STREAM_RATE / block_size) if seconds else None
    with ExitStack() as stack:
        recorder = stack.enter_context(recording(record, STREAM_RATE)) if record else None
        callback = make_callback(converter, controls, stats, recorder.put if recorder else None, max_blocks,
                                 sd.CallbackStop, sd.CallbackAbort)
        stream = stack.enter_context(_open_stream(sd, (input_device, output_device), block_size, callback))
        latency_ms = 1000 * (converter.latency_samples / STREAM_RATE + sum(stream.latency))
        start = time.perf_counter()
        try:
            _serve(stream, stats, controls, converter, stop_event, commands, status_every_s, latency_ms, out,
                   None if seconds is None else seconds + STALL_S)
        except KeyboardInterrupt:
            pass
        wall_s = time.perf_counter() - start
        if controls.error is not None:  # raised inside, so the stream closes and the recording is discarded
            raise controls.error
    return summarise(stats, wall_s, latency_ms)


def _check_converter(converter: Converter, block_size: int) -> None:
    if converter.sample_rate != STREAM_RATE:
        raise MelismaError(f"the converter runs at {converter.sample_rate} Hz; the stream needs {STREAM_RATE} Hz")
    if converter.block_size != block_size:
        raise MelismaError(f"the converter takes blocks of {converter.block_size} samples, not {block_size}")


@contextmanager
def _open_stream(sd: Any, devices: tuple[int | None, int | None], block_size: int,
                 callback: Callable) -> Iterator[Any]:
    """A started duplex mono float32 stream; stopped and closed when the block ends."""
    try:
        stream = sd.Stream(device=devices, samplerate=STREAM_RATE, blocksize=block_size, dtype="float32",
                           channels=1, latency="low", callback=callback)
    except sd.PortAudioError as exc:
        raise MelismaError(f"cannot open the audio stream on devices {devices}: {exc}") from None
    with stream:
        yield stream


def _serve(stream: Any, stats: LiveStats, controls: LiveControls, converter: Converter,
           stop_event: threading.Event, commands: queue.Queue, status_every_s: float, latency_ms: float,
           out: TextIO, give_up_s: float | None) -> None:
    """The main thread while the stream runs: commands, the status line, the stop conditions."""
    start = next_status = time.perf_counter()
    show = _status_printer(out, status_every_s > 0)
    try:
        while not stop_event.is_set() and stream.active and controls.error is None:
            if _take_command(commands, converter, controls, out):
                stop_event.set()
            now = time.perf_counter()
            if now >= next_status:
                show(status_line(stats, controls, latency_ms))
                next_status = now + status_every_s
            if give_up_s is not None and now - start > give_up_s:
                raise MelismaError(f"the audio device ran only {stats.blocks} blocks in {now - start:.1f} s "
                                   f"({stats.blocks * stats.block_s:.1f} s of audio); is it stalled?")
    finally:
        show(None)


def _take_command(commands: queue.Queue, converter: Converter, controls: LiveControls, out: TextIO) -> bool:
    """Wait up to 50 ms for a command and carry it out; True means quit. A bad command is reported, not fatal."""
    try:
        line = commands.get(timeout=0.05)
    except queue.Empty:
        return False
    try:
        command = parse_command(line)
        return command is not None and apply_command(command, converter, controls)
    except MelismaError as exc:
        tty = bool(getattr(out, "isatty", lambda: False)())
        print(("\n" if tty else "") + f"melisma: {exc}", file=out, flush=True)
        return False


def _status_printer(out: TextIO, enabled: bool) -> Callable[[str | None], None]:
    """show(line) rewrites one terminal line (``\\r``) or, off a terminal, prints a line; show(None) ends it."""
    tty = bool(getattr(out, "isatty", lambda: False)())
    shown = [False]

    def show(line: str | None) -> None:
        if not enabled:
            return
        if line is None:
            if tty and shown[0]:
                print(file=out, flush=True)
            return
        print(f"\r{line}\x1b[K" if tty else line, end="" if tty else "\n", file=out, flush=True)
        shown[0] = True

    return show
