"""edgebert: take a DistilBERT or SqueezeBERT text classifier to edge runtimes, and prove it still works."""

__version__ = "0.1.0"
