"""serkit: speech emotion recognition with self-supervised features.

Layers (imports point downward): data -> upstream/downstream -> fusion -> model -> training/evaluation
-> inference -> serve/export -> cli. See ../shared/DESIGN.md in the developers' tree, README for users.
"""

__version__ = "0.1.0"
