"""Suite-wide setup that keeps the suite portable across machines.

JAX puts new arrays on its default device, a GPU where one is present; the
suite's JAX arrays stand for host memory (pointers compared with NumPy's,
the buffer protocol, the array interface), so they are asked for on the
CPU. Without JAX installed nothing happens (the modules that need JAX import
it themselves).
"""

from __future__ import annotations


def pytest_configure(config):
    try:
        import jax
    except ImportError:
        return
    try:
        cpu = jax.devices("cpu")[0]
    except RuntimeError:  # JAX_PLATFORMS without "cpu": JAX's tests skip or fail as they would
        return
    jax.config.update("jax_default_device", cpu)
