"""vitprune: make Vision Transformers cheaper to run, faithfully and measurably.

import timm, vitprune
model = vitprune.apply(timm.create_model("deit_small_patch16_224"), "tome", macs=0.6)
"""

from vitprune import zoo
from vitprune.api import apply, methods, remove
from vitprune.vit import UnsupportedModelError

__version__ = "0.1.0"
__all__ = ["UnsupportedModelError", "apply", "methods", "remove", "zoo"]
