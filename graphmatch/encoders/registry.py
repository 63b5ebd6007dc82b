"""The encoder registry (image and text encoders share it; a config names one by
``model.image.name`` / ``model.text.name``)."""
from graphmatch.registry import Registry

#: Image and text encoders by name.
ENCODERS = Registry("encoder")
