"""Character mode: color one character from a few colored references of it, without hints.

* :mod:`.matching`: classical reference matching (alignment, region features, cost matrix, relaxation, leaky-region
  splitting, colors with a confidence);
* :mod:`.model`: the character file (the base network + the references in one .safetensors) and
  :class:`~.model.CharacterColorizer`, which combines the network's per-region votes with the matching.
"""
