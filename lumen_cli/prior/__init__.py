"""Lumen additions shared by several methods: the global tone prior (``tone``) and the shadow
finish (``finish``). Each is a named module with its own tests (tests/test_prior_*.py)."""
