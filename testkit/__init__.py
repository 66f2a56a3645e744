"""Test support shared by tests, benchmarks and scripts: helpers, fakes, tiny models, meshes.

Fixtures stay in the tests' conftest.py files; everything a test, benchmark or script
imports lives here (no imports from conftest.py, nothing imported from tests/).
"""
