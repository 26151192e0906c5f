"""Sweeps: every method at every MACs target against the dense model, resumable (``run``), measured
(``measure``), saved as JSON/CSV/Markdown (``files``) and plotted (``plots``); ``cli`` is the verb."""
