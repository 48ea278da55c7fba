"""Robustness verification: certified guarantees, not attacks.

An attack's failure proves nothing; a certificate does. :func:`certify` gives each
input of a tree ensemble a certified lower bound on its L∞ robust radius and the
verified robust accuracy at an ``eps`` (Chen et al., NeurIPS 2019).
"""

from advml.verification.robustness import Certificate, LeafBoxes, certify

__all__ = ["Certificate", "LeafBoxes", "certify"]
