"""Standard MIDI files from note lists, written byte by byte (format 0: one track, all channels).

A ``Note`` is (channel, program, midi pitch, start in beats, length in beats, velocity).  Times are in beats at
``TICKS_PER_BEAT`` resolution; the tempo is one meta event at the start.  Channel 9 is the GM drum channel (its
``program`` selects the drum kit, as fluidsynth reads it).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9


@dataclass(frozen=True)
class Note:
    channel: int  # 0-15; 9 = drums
    pitch: int  # MIDI note number 0-127
    start: float  # beats
    length: float  # beats
    velocity: int  # 1-127


@dataclass(frozen=True)
class Part:
    """One instrument: its channel's setup (GM program, volume, reverb and chorus sends) and its notes."""

    channel: int
    program: int  # GM program 0-127 (drums: kit preset)
    volume: int  # CC7, 0-127
    reverb: int  # CC91 send, 0-127
    chorus: int  # CC93 send, 0-127
    notes: tuple[Note, ...]


def _varlen(value: int) -> bytes:
    """A MIDI variable-length quantity (7 bits a byte, high bit = more follows)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _events(parts: Sequence[Part], bpm: float) -> list[tuple[int, int, bytes]]:
    """(tick, order, message bytes): setup first, note-offs before note-ons at the same tick."""
    tempo = int(round(60_000_000 / bpm))
    events = [(0, 0, b"\xff\x51\x03" + tempo.to_bytes(3, "big"))]
    for p in parts:
        c = p.channel
        if c == DRUM_CHANNEL:
            events.append((0, 1, bytes([0xB0 | c, 0, 1])))  # bank select 1 (fluidsynth: drum bank 128 on ch 10)
        events += [(0, 1, bytes([0xC0 | c, p.program])), (0, 1, bytes([0xB0 | c, 7, p.volume])),
                   (0, 1, bytes([0xB0 | c, 91, p.reverb])), (0, 1, bytes([0xB0 | c, 93, p.chorus]))]
        for n in p.notes:
            on = int(round(n.start * TICKS_PER_BEAT))
            off = max(on + 1, int(round((n.start + n.length) * TICKS_PER_BEAT)))
            events.append((on, 3, bytes([0x90 | c, n.pitch, n.velocity])))
            events.append((off, 2, bytes([0x80 | c, n.pitch, 0])))
    return sorted(events, key=lambda e: (e[0], e[1], e[2]))


def midi_bytes(parts: Sequence[Part], bpm: float, end_beat: float) -> bytes:
    """A format-0 SMF of ``parts`` at ``bpm``, its end-of-track at ``end_beat``."""
    track, last = bytearray(), 0
    for tick, _, msg in _events(parts, bpm):
        track += _varlen(tick - last) + msg
        last = tick
    end = max(last, int(round(end_beat * TICKS_PER_BEAT)))
    track += _varlen(end - last) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_BEAT)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)
