"""Model registry and loading: built-in defaults, local Hugging Face dirs, hub ids."""

from . import distilbert, squeezebert  # noqa: F401  (register the architectures)
from .loader import LoadedModel, load_classifier  # noqa: F401
from .registry import Architecture, get, names  # noqa: F401
