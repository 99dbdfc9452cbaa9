"""mixlab: find the best training-data mixture for a model and its target tasks, by experiment."""

__version__ = "0.1.0"
