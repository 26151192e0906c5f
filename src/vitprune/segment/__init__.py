"""Semantic segmentation with a ViT whose head classifies every patch token (Segmenter's linear
decoder, Strudel et al., ICCV 2021), run under any token method with the full patch grid restored."""
