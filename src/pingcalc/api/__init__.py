"""The HTTP layer: routes, request and response models, error mapping. Nothing else."""
