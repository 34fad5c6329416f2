"""`serkit data`."""
