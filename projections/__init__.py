"""Read models as pure folds over events, and the KPIs, which use the same interface."""
