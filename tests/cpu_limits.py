"""What this machine's ATen kernels cannot run, probed once: tests skip with the reason, not fail."""

import os

import torch
import torch.nn.functional as F

# torch 2.14.1's Inductor emits C++ that does not build when ATen runs its baseline kernels
# ("'at::vec' has not been declared"), so Inductor tests cannot run under ATEN_CPU_CAPABILITY=default.
NO_INDUCTOR = os.environ.get("ATEN_CPU_CAPABILITY") == "default"


def _bf16_attention_runs() -> bool:
    """On a CPU with AMX, torch 2.14.1's bf16 flash attention (64 tokens and more) packs its operands with
    an AVX-512-only routine even when ATEN_CPU_CAPABILITY=avx2 or =default forces the narrower kernels, and
    raises "pack_vnni2 is only supported when avx512 is supported" (CI, stop 44). Plain timm fails the same
    way, and a real AVX2 machine never takes that path: the forced kernels cannot run bf16 attention here."""
    q = torch.zeros(1, 1, 64, 8, dtype=torch.bfloat16)
    try:
        F.scaled_dot_product_attention(q, q, q)
    except RuntimeError as error:
        if "pack_vnni2" not in str(error):
            raise
        return False
    return True


BF16_ATTENTION = _bf16_attention_runs()
