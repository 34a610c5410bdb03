"""Datasets and generators, one module per task. Generators take explicit seeds and never touch
the global random state."""
