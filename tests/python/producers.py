"""Minimal pure-Python producers shared by the extension and borrow tests:
each speaks exactly one protocol of a NumPy array it keeps alive."""

from __future__ import annotations

import numpy as np


class ArrayInterfaceOnly:
    """Speaks only `__array_interface__` (a dict read once), keeping `base` alive."""

    def __init__(self, base: np.ndarray):
        self.base = base
        self.__array_interface__ = base.__array_interface__


class ArrayStructOnly:
    """Speaks only `__array_struct__` (a fresh capsule on every read)."""

    def __init__(self, base: np.ndarray):
        self.base = base

    @property
    def __array_struct__(self):
        return self.base.__array_struct__
