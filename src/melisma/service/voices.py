"""The voices a service or the web UI converts with: the built-in ones and those its training jobs made."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from melisma.service.tasks import voices_dir


def available_voices(data_dir: Path) -> list[dict[str, str]]:
    """[{"name", "kind": "trained" | "builtin"}]; a trained voice hides a built-in one of the same name."""
    from melisma.singer.convert import builtin_voices

    trained = sorted(p.stem for p in voices_dir(data_dir).glob("*.melisma"))
    return ([{"name": n, "kind": "trained"} for n in trained]
            + [{"name": n, "kind": "builtin"} for n in builtin_voices() if n not in trained])


class VoiceCache:
    """The last few loaded voices (loading one takes seconds), shared by every worker thread.

    Keyed on the pack's path and modification time too, so a voice retrained under the same name is reloaded."""

    def __init__(self, size: int = 4):
        self.size, self.voices, self.lock = size, OrderedDict[tuple, Any](), threading.Lock()

    def get(self, voice: str, f0: str = "dio"):
        from melisma.singer.convert import load_voice

        path = Path(voice)
        key = (voice, f0, path.stat().st_mtime_ns if path.is_file() else 0)
        with self.lock:
            if key in self.voices:
                self.voices.move_to_end(key)
                return self.voices[key]
        loaded = load_voice(voice, f0=f0)
        with self.lock:
            self.voices[key] = loaded
            while len(self.voices) > self.size:
                self.voices.popitem(last=False)
        return loaded
