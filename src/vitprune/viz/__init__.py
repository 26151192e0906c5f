"""Token maps: which original patches each block keeps, merges together, or drops.

model = vitprune.apply(model, "tome", macs=0.6, trace_source=True)
path, maps = save_token_maps(model, inputs, "tokens.png")
"""

from vitprune.viz.api import denormalise, save_token_maps
from vitprune.viz.groups import DROPPED, patch_groups
from vitprune.viz.record import LayerMap, TokenMaps, record_token_maps
from vitprune.viz.render import render_token_maps

__all__ = [
    "DROPPED",
    "LayerMap",
    "TokenMaps",
    "denormalise",
    "patch_groups",
    "record_token_maps",
    "render_token_maps",
    "save_token_maps",
]
