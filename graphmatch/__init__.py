"""graphmatch: graph-based fine-grained image–sentence matching."""

__version__ = "0.1.0"
