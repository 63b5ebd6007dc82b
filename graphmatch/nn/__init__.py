"""Neural-network building blocks below the models.

* :mod:`graphmatch.nn.functional` — pure tensor maths (norms, masked cross-attention, the SCAN
  fast path, masked aggregation);
* :mod:`graphmatch.nn.conv` — GNN layers by name (:data:`~graphmatch.nn.conv.GNN_LAYERS`,
  :func:`~graphmatch.nn.conv.build_gnn_layer`).

The GNN stack that refines an encoder's nodes is :class:`graphmatch.encoders.graph.GNNStack`.
Importing this package imports neither subpackage.
"""
