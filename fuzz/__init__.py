"""Fuzzing of read_image and the libdeclip command: see fuzz/README.md."""
