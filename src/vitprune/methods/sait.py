"""SaiT (reconstructed): one model, many token densities (Li, Thorsley & Hassoun, arXiv 2210.05832; seed 002).

Only the abstract is certain: dense/sparse training with shared weights, input-adaptive token
pruning, distillation that improves token selection in early blocks, sparsity changed on the fly,
and a dense mode that skips sparsification. The method body below is **our reconstruction**
(``docs/sait.md`` in the repository), consistent with that abstract:

- one pruning point in block ``layer`` (default 3 of 12; a second point may be listed), after the
  attention and before the MLP, scored by the CLS attention of that block (mean over heads),
  normalised to sum 1 over the image's patches: ŝ;
- the strategy is a runtime setting of the same model, ``model.sait.set(mode=...)``:
  ``"ratio"`` keeps top-ceil(keep · patches) (one count per batch);
  ``"value"`` keeps the patches with ŝ ≥ tau / patches (per image);
  ``"mass"`` keeps the fewest top patches whose ŝ sums to ``mass`` (per image);
  ``"dense"`` skips sparsification entirely (the unpatched forward).
Per-image counts are batched with padding and an attention key mask, and counted per image.
"""

from __future__ import annotations

from vitprune.methods.base import TokenMethod, check_layer, check_options, register, require_class_token
from vitprune.methods.target import bisect, method_macs, parse_macs_target, reach_error
from vitprune.tokens.select import keep_topk, mass_counts
from vitprune.vit import VitSpec

MODES = ("dense", "ratio", "value", "mass")
RECONSTRUCTED = "SaiT (reconstructed)"


class SaiT(TokenMethod):
    name = "sait"
    summary = f"{RECONSTRUCTED}: prune by CLS attention at an early block; density set at run time"

    def __init__(self, layers: tuple[int, ...]):
        self.layers = layers
        self.mode, self.keep, self.tau, self.mass = "ratio", 0.7, 1.0, 0.9

    def set(
        self,
        mode: str | None = None,
        keep: float | None = None,
        tau: float | None = None,
        mass: float | None = None,
    ) -> SaiT:
        """Change the density on the fly, without re-patching: any of mode, keep, tau, mass."""
        if mode is not None and mode not in MODES:
            raise ValueError(f"sait: mode={mode!r} is invalid; allowed: {MODES}")
        for name, value in (("keep", keep), ("mass", mass)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1
            ):
                raise ValueError(f"sait: {name}={value!r} is invalid; allowed: a fraction in (0, 1]")
        if tau is not None and (isinstance(tau, bool) or not isinstance(tau, int | float) or not tau >= 0):
            raise ValueError(f"sait: tau={tau!r} is invalid; allowed: a number >= 0 (1 = the uniform score)")
        self.mode = mode or self.mode
        self.keep = float(keep) if keep is not None else self.keep
        self.tau = float(tau) if tau is not None else self.tau
        self.mass = float(mass) if mass is not None else self.mass
        if keep is not None:  # the counts memoised were for the old density
            self._kept = None
            if self._spec is not None:
                self.plan(self._spec)
        return self

    @property
    def per_image_counts(self) -> bool:
        return self.mode in ("value", "mass")

    def active(self, layer: int) -> bool:
        # Value mode at tau 0 keeps every patch (a score is never below 0): known before the forward,
        # so the block runs unchanged instead of re-sorting all its tokens by score.
        keeps_all = self.mode == "value" and self.tau <= 0
        return self.mode != "dense" and layer in self.layers and not keeps_all

    def reduce(self, layer, x, state, attn):
        p = state.num_prefix
        scores = attn.cls_scores(start=p)
        valid = None if state.valid is None else state.valid[:, p:]
        if self.mode == "ratio":
            return keep_topk(x, state, scores, self.kept(layer, state.num_patches, self.keep))
        if self.mode == "mass":
            return keep_topk(x, state, scores, mass_counts(scores, self.mass, valid))
        real = scores.masked_fill(~valid, 0) if valid is not None else scores
        normalised = real / real.sum(1, keepdim=True)
        patches = (state.counts() - p)[:, None]
        above = normalised >= self.tau / patches
        if valid is not None:
            above &= valid
        return keep_topk(x, state, scores, above.sum(1).clamp_min(1))

    def schedule(self, spec: VitSpec) -> list[tuple[int, int]]:
        """Counts in ratio or dense mode; value and mass modes depend on each image (an upper bound)."""
        counts, n = [], spec.num_patches
        for layer in range(spec.depth):
            after = self.kept(layer, n, self.keep) if self.mode == "ratio" and self.active(layer) else n
            counts.append((n + spec.num_prefix, after + spec.num_prefix))
            n = after
        return counts


def _inferred_mode(config: dict) -> dict:
    """``keep=`` alone means ratio mode, ``tau=`` value mode, ``mass=`` mass mode."""
    if "mode" not in config:
        for key, mode in (("keep", "ratio"), ("tau", "value"), ("mass", "mass")):
            if key in config:
                return {**config, "mode": mode}
    return config


@register(SaiT.name, SaiT.summary)
def build(spec: VitSpec, **config) -> SaiT:
    check_options("sait", config, ("layer", "layers", "mode", "keep", "tau", "mass", "macs"), knob="keep")
    require_class_token("sait", spec)
    layers = config.pop("layers", (config.pop("layer", min(3, spec.depth - 1)),))
    method = SaiT(tuple(check_layer(v, spec.depth) for v in layers))
    macs = config.pop("macs", None)
    method.set(**_inferred_mode(config))
    if macs is not None:
        if method.mode != "ratio":
            raise ValueError(f"sait: macs= solves the keep ratio; it needs mode='ratio', not {method.mode!r}")
        target = parse_macs_target(macs, spec)
        lowest = method_macs(SaiT(method.layers).set(keep=1e-3), spec)
        if target < lowest * 0.98:
            raise reach_error("sait", macs, target, lowest, spec)
        method.set(
            keep=bisect(lambda k: method_macs(SaiT(method.layers).set(keep=k), spec), 1e-3, 1.0, target)
        )
    return method
