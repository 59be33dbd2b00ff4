"""Shared test helpers. Tests generate their own data and read nothing outside the repository."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def torch_or_skip():
    """Import torch, or skip the test with the reason."""
    return pytest.importorskip("torch", reason="PyTorch (the oracle) is not installed; "
                                               "pip install torch==2.13.0")
