"""Deploying a reduced model: compiled, exported with ``torch.export`` (.pt2) or to ONNX, method baked in."""
