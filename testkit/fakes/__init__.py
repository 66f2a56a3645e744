"""Fakes that implement the real interfaces (HTTP APIs or engine Protocols) with knobs."""
