"""Offline calibration for token pruning: STAR's LRP inter-layer prior and patch-similarity (ACS) rates."""
