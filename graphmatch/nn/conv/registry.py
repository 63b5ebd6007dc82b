"""The GNN layer registry (its own module so that layer files and the builder share it without an
import circle)."""
from graphmatch.registry import Registry

#: GNN layers by name (``model.image_gnn.name`` / ``model.text_gnn.name``).
GNN_LAYERS = Registry("GNN layer", "gnn_layers")
