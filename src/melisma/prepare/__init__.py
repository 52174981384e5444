"""Song preparation: raw songs -> a checked, sliced, loudness-normalised training set.

    from melisma.prepare import PrepareSettings, prepare_dataset
    ds = prepare_dataset(["song.mp3", "more_songs/"], "dataset/", PrepareSettings(separate="dsp"))
    ds.totals()["usable_minutes"]

Modules: ``separate`` (Separator base, dsp, demucs), ``slicer``, ``quality``, ``manifest``, ``pipeline``,
``synthetic`` (a song with known stems for tests and benchmarks).
"""

from melisma.prepare.pipeline import PrepareSettings, prepare_dataset

__all__ = ["PrepareSettings", "prepare_dataset"]
