"""Models. Each returns `(output, aux)`; `aux["token_layers"]` is the compute spent per example
(token positions times block applications), so accuracy can always be plotted against compute,
and an adaptive model's `aux["penalty"]` is its weighted compute regulariser per example (ponder
cost, tape loss), which `repro.losses.classification_loss` adds to the task loss."""
