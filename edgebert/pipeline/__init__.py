"""``edgebert build``: one config -> every artifact of the matrix, checked per device, gated, reported.

The package is ``pipeline/``, not ``build/``: tools and .gitignore patterns treat a folder named
build/ as generated output.

``config.py`` (the TOML config as frozen dataclasses), ``fingerprint.py`` (input fingerprints for
incremental builds), ``steps.py`` (the step registry: export, quantize:MODE, check, and the build's
typed records), ``gates.py`` (limits per record), ``baseline.py`` (regressions vs a committed
baseline), ``runner.py`` (the build itself).
"""

from .config import BuildConfig, default_config, load as load_config, parse as parse_config
from .runner import build, exit_code

__all__ = ["BuildConfig", "build", "default_config", "exit_code", "load_config", "parse_config"]
