"""serkit_synth: made-up speech with known truth, for tests, demos and benchmarks; not part of the toolkit proper.

    voice.py     a source-filter voice (numpy + scipy): Voice (speaker), Prosody (emotion), synthesize()
    iemocap.py   an IEMOCAP_full_release-shaped corpus of that voice (`serkit synth-iemocap`, `make demo`)
    montage.py   long recordings of clips between silences, with their speech spans (segmentation tests)

It is installed with serkit and imports serkit (audio loading, errors); serkit's layers never import it: only
the demo, the `synth-iemocap` command and `serkit export --quantize`'s check on clips do (tests/test_imports.py).
"""
