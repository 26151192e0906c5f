"""Fashion-MNIST read straight from the original idx ``.gz`` files.

The Debian package ``dataset-fashion-mnist`` installs the four files under
``/usr/share/datasets/fashion-mnist``; no download ever happens here. The whole
split is decoded once into a uint8 array (60k x 28 x 28 is ~47 MB), so indexing
is a cheap slice.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "VITPRUNE_FMNIST"
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """Pick the data directory: explicit ``root``, then ``$VITPRUNE_FMNIST``, then the Debian default."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_ROOT


def has_split(root: str | os.PathLike, split: str) -> bool:
    """Whether ``root`` holds both idx files of Fashion-MNIST ``split``."""
    return split in SPLITS and all((Path(root) / name).is_file() for name in SPLITS[split])


def read_idx(path: Path) -> np.ndarray:
    """Decode one gzipped idx file (unsigned-byte payload) into an array of its declared shape.

    The header is two zero bytes, a type code (0x08 = uint8) and the number of
    dimensions, followed by one big-endian int32 per dimension.
    """
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not a uint8 idx file")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {data.size} bytes of data, header says shape {shape}")
    return data.reshape(shape)


class FashionMNIST(Dataset):
    """Fashion-MNIST split as ``(image, label)`` pairs.

    ``image`` is a uint8 tensor of shape [1, 28, 28] passed through ``transform``
    when one is given (e.g. :func:`vitprune.data.transforms.model_transform`);
    ``label`` is an int in ``range(10)``.
    """

    classes = CLASSES

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "test",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"unknown Fashion-MNIST split {split!r}; expected one of {sorted(SPLITS)}")
        self.root = resolve_root(root)
        self.split = split
        self.transform = transform
        paths = [self.root / name for name in SPLITS[split]]
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(
                    f"Fashion-MNIST file not found: {path}. Install it with "
                    f"`apt-get install dataset-fashion-mnist` (Debian), or point ${ENV_VAR} / --data "
                    f"at a directory holding {', '.join(SPLITS[split])}."
                )
        self.images = torch.from_numpy(read_idx(paths[0]).copy()).unsqueeze(1)
        self.labels = torch.from_numpy(read_idx(paths[1]).astype(np.int64))
        if len(self.images) != len(self.labels):
            raise ValueError(f"{self.root}: {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
