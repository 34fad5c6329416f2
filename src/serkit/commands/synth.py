"""`serkit synth`."""
