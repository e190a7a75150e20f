"""Exceptions raised by libdeclip. Catch :class:`DeclipError` to catch them all."""

from __future__ import annotations

__all__ = ["DeclipError", "UnsupportedInputError", "ModelError", "EngineError"]


class DeclipError(Exception):
    """Base class of every error libdeclip raises on purpose."""


class UnsupportedInputError(DeclipError, ValueError):
    """The image (array or file) has a shape, dtype or content libdeclip cannot repair."""


class ModelError(DeclipError):
    """The model file is missing, unreadable, or does not follow the model contract."""


class EngineError(DeclipError, RuntimeError):
    """The inference engine failed while running the model."""
