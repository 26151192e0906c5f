"""Files written whole or not at all, and weights read without unpickling: the one place that does it."""
