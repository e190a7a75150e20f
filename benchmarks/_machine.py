"""One line that says which machine a benchmark ran on (CPU, cores, memory, GPU, OS, versions)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path


def _first(path: str, key: str, sep: str = ":") -> str | None:
    """The value of the first ``key SEP value`` line of a file such as /proc/cpuinfo."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key) and sep in line:
                return line.split(sep, 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cuda_available() -> bool:
    """Whether ONNX Runtime here has its CUDA provider (``onnxruntime-gpu`` on a machine with CUDA)."""
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def gpu_names() -> list[str]:
    """The NVIDIA GPUs ``nvidia-smi`` lists, or an empty list."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        proc = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()] if proc.returncode == 0 else []


def describe() -> str:
    """E.g. ``2-core AMD EPYC, 24 GB, no GPU; Debian GNU/Linux 12 (bookworm); Python 3.11.2,
    onnxruntime 1.32.0 (CPU), torch 2.13.0+cpu``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = _first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()
    mem_kb = _first("/proc/meminfo", "MemTotal")
    mem = f", {int(mem_kb.split()[0]) / 1024**2:.0f} GB" if mem_kb else ""
    gpus = gpu_names()
    gpu = ", ".join(gpus) if gpus else "no GPU"
    system = _first("/etc/os-release", "PRETTY_NAME", "=") or platform.platform()
    ort = _version("onnxruntime-gpu") or _version("onnxruntime")
    try:
        providers = "CUDA" if cuda_available() else "CPU"
    except ImportError:
        providers = "not installed"
    versions = [f"Python {platform.python_version()}", f"onnxruntime {ort} ({providers})"]
    if torch := _version("torch"):
        versions.append(f"torch {torch}")
    return f"{cores}-core {cpu}{mem}, {gpu}; {system}; {', '.join(versions)}"


if __name__ == "__main__":
    print(describe())
