"""Small helpers used by several layers (no serkit imports)."""
