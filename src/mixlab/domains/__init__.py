"""domains stage."""
