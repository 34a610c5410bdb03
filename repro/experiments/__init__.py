"""The pipelines that more than one notebook runs, one module each. They return tidy data frames (one row per model,
seed and measurement) that `repro.verdicts` and `repro.plots` read."""
