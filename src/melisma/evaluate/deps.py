"""Optional packages the metrics need, imported on first use with a one-line install hint when absent."""

from __future__ import annotations

import importlib
from types import ModuleType

from melisma.errors import MissingDependencyError

# module -> the pip line that installs it in melisma's environment
INSTALL_HINTS = {
    "resemblyzer": "pip install --no-deps resemblyzer && pip install librosa webrtcvad-wheels",
    "speechmos": "pip install speechmos",
    "pesq": "pip install pesq",
    "pystoi": "pip install pystoi",
    "matplotlib": "pip install matplotlib",
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming the pip line that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = INSTALL_HINTS.get(module.split(".")[0], f"pip install {module.split('.')[0]}")
        raise MissingDependencyError(
            f"this metric needs the '{module.split('.')[0]}' package ({exc.name or module} missing): {hint}"
        ) from None
