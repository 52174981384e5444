"""singer stage."""
