"""Skip marks for tests that need an optional extra (install.sh's eval / pitch / ssl / train extras, the
corpus voices, Debian's espeak-ng and festival): when it is absent the test is skipped with the missing
names as the reason instead of erroring.  Looked up with find_spec / which, so nothing is imported."""

from __future__ import annotations

import importlib.util
import shutil

import pytest


def _absent(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a missing parent package, or a module without a spec
        return True


def needs(*modules: str) -> pytest.MarkDecorator:
    """Skip unless every module in ``modules`` is importable."""
    missing = [m for m in modules if _absent(m)]
    return pytest.mark.skipif(bool(missing), reason=f"optional package not installed: {', '.join(missing)}")


def needs_binary(*names: str) -> pytest.MarkDecorator:
    """Skip unless every program in ``names`` is on PATH."""
    missing = [n for n in names if shutil.which(n) is None]
    return pytest.mark.skipif(bool(missing), reason=f"program not installed: {', '.join(missing)}")


# what each optional component needs at run time (the --no-deps installs' real dependencies included)
needs_resemblyzer = needs("resemblyzer", "webrtcvad")
needs_dnsmos = needs("speechmos", "onnxruntime")
needs_pesq_stoi = needs("pesq", "pystoi")
needs_matplotlib = needs("matplotlib")
needs_fcpe = needs("torchfcpe", "einops", "local_attention")
needs_crepe = needs("torchcrepe")
needs_festival = needs_binary("text2wave")
needs_espeak = needs_binary("espeak-ng")
