"""Classifier backends; each imports its heavy library only when constructed."""
