"""The matcher registry (its own module so that matcher files and the builder share it without an
import circle)."""
from graphmatch.registry import Registry

#: Image–sentence matchers by name (``model.matcher.name``).
MATCHERS = Registry("matcher")
