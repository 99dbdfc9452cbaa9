"""pool stage."""
