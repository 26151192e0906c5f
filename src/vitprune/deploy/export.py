"""Write a model, token method included, to a file that runs without vitprune.

``pt2`` is a ``torch.export`` program (load with ``torch.export.load(path).module()``); ``onnx`` is
the same program through the dynamo ONNX exporter (run with onnxruntime). Both are traced from one
example batch with the batch dimension left dynamic, so any batch size runs; the token schedule is
fixed (a method whose token counts depend on each image cannot be exported, see ``exportable``).
The file is written to a temporary name and renamed, so a failed export never leaves half a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

FORMATS = ("pt2", "onnx")
MAX_BATCH = 4096


def exportable(model: nn.Module) -> str | None:
    """Why ``model``'s token method cannot be exported, or ``None`` when it can."""
    context = getattr(model, "vitprune", None)
    method = getattr(context, "method", None)
    if method is not None and getattr(method, "per_image_counts", False):
        return (
            f"{method.name} keeps a different number of tokens per image in this setting, so the output "
            "shapes inside the model depend on the data; export a fixed schedule (STAR without adaptive, "
            "SaiT in ratio mode)"
        )
    return None


def export_program(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` in eval mode, dynamic in the batch dimension."""
    reason = exportable(model)
    if reason:
        raise ValueError(f"cannot export: {reason}")
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad():
        return torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},))


def export_model(model: nn.Module, example: torch.Tensor, path: str | os.PathLike, fmt: str) -> Path:
    """Export ``model`` to ``path`` as ``fmt`` (one of ``FORMATS``); returns the path written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; allowed: {FORMATS}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    program = export_program(model, example)
    try:
        if fmt == "pt2":
            torch.export.save(program, tmp)
        else:
            torch.onnx.export(program, (example,), dynamo=True, optimize=True, verbose=False).save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def run_exported(path: str | os.PathLike, images: torch.Tensor) -> torch.Tensor:
    """Outputs of an exported file on ``images``: a .pt2 through ``torch.export.load``, an ONNX file
    through onnxruntime on the CPU."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return torch.from_numpy(session.run(None, {name: images.numpy()})[0])
    with torch.no_grad():
        return torch.export.load(path).module()(images)
