"""content stage."""
