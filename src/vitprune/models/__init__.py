"""Models by name: ``load`` resolves zoo names, then timm's; ``build`` makes a timm model with strictly
loaded weights; ``device`` says where a model runs."""
