"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny nets: intra-op threads only add hand-off overhead (a lot on a shared 2-core CPU)."""
    import torch  # lazily: most test modules are torch-free

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
