"""Training of the DeclipNet generator (PyTorch) and its export to ONNX.

Nothing in :mod:`libdeclip` imports this package: the runtime only sees the exported ONNX file.
"""
