"""Retrieval methods behind one interface (`Method`), looked up by name in a registry."""

from . import pooling, calibrated, s2, detailclip  # noqa: F401, I001  (each registers its methods; this order lists them)
from .base import Encoded, Method
from .registry import METHODS, create_method, method_names, register

__all__ = ["METHODS", "Encoded", "Method", "create_method", "method_names", "register"]
