"""mixtures stage."""
