"""A Hugging Face transformers model from a local ``save_pretrained`` directory (``--model hf:PATH``).

Nothing is downloaded: the directory must hold ``config.json`` and the weights. The class is the
first of the config's ``architectures`` (e.g. ``ViTForImageClassification``, ``CLIPVisionModel``),
loaded with SDPA attention, whose additive mask token methods use; the saved image processor's mean
and std, when there is one, become the model's input normalisation. Needs ``vitprune[hf]``.
"""

from __future__ import annotations

import json
import os

from torch import nn

PREFIX = "hf:"


def load_hf(path: str | os.PathLike) -> nn.Module:
    """The model saved in ``path``, in eval mode."""
    try:
        import transformers
    except ImportError as e:
        raise ImportError("hf: models need transformers: pip install 'vitprune[hf]'") from e
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"hf:{path} is not a save_pretrained directory (no config.json)")
    config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    name = (config.architectures or ["AutoModel"])[0]
    cls = getattr(transformers, name, None)
    if cls is None:
        raise ValueError(f"hf:{path}: transformers has no class {name!r} (from config.json architectures)")
    model = cls.from_pretrained(path, local_files_only=True, attn_implementation="sdpa").eval()
    model.pretrained_cfg = _input_config(path)
    return model


def _input_config(path: str | os.PathLike) -> dict:
    """The saved image processor's normalisation, in timm's ``pretrained_cfg`` words (what
    ``vitprune.data.transforms`` reads); empty when the directory has no ``preprocessor_config.json``."""
    file = os.path.join(path, "preprocessor_config.json")
    if not os.path.isfile(file):
        return {}
    with open(file) as f:
        processor = json.load(f)
    keys = {"image_mean": "mean", "image_std": "std"}
    return {ours: tuple(processor[theirs]) for theirs, ours in keys.items() if theirs in processor}
