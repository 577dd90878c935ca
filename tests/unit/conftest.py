"""Fixtures shared by the unit tests."""

import pytest
import torch


@pytest.fixture
def float64():
    """Models built while this is active hold float64 parameters (train() included): the
    dtype in which the lock-step ensemble is tested for equality with train()."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
