"""regression stage."""
