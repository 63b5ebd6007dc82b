"""The registry of data sets (a module of its own, so that the data sets can import it without
importing their package)."""
from graphmatch.registry import Registry

#: Data sets by name (the ``data`` section's ``name``).
DATASETS = Registry("data set", "datasets")

__all__ = ["DATASETS"]
