"""Tiny models built on disk by the tests, loaded through the real loading code."""
