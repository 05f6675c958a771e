"""Data files shipped with dnas (e.g. the NAS-Bench-201 CIFAR-10 records used by the tabular evaluator)."""
