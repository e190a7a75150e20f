"""Resources: a GPU out of memory, the threads and the memory a run takes.

GPU out of memory: there is no GPU here, so a real engine (the shipped model, ONNX Runtime on the
CPU) presents itself as ``cuda:0`` and its GPU run raises what ONNX Runtime raises on a CUDA out
of memory (the exception type and message, as reported in onnxruntime issues #22702, #16307 and
#9939) whenever the test says so; everything else is the real pipeline. The output must equal a
plain CPU run's (to float rounding), with every tile there.

Threads and memory are measured in fresh processes: ``/proc/self/task`` sampled from a thread
during a run, and the peak RSS (``VmHWM``, reset just before the run through
``/proc/self/clear_refs``) of a run on a 12-megapixel image with small tiles. The bounds are the
ones the README states under "Resources".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, RuntimeException

import libdeclip.session as session_module
from libdeclip import Declipper, DeviceFallbackWarning, EngineError
from libdeclip.engine import GpuOutOfMemoryError, OnnxEngine, is_out_of_memory
from tests.conftest import DEMO_PHOTO, REPO

# What ONNX Runtime (CUDA execution provider) raises when the GPU's memory runs out: its arena
# (BFCArena) failing to grow, and a raw cudaMalloc failing.
ARENA_OOM = (
    "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node. "
    "Name:'/generator/enc1/Conv' Status Message: "
    "/onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:376 "
    "void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*, bool, "
    "onnxruntime::WaitNotificationFn) Failed to allocate memory for requested buffer of size 1073741824"
)
CUDA_OOM = (
    "[ONNXRuntimeError] : 1 : FAIL : /onnxruntime_src/onnxruntime/core/providers/cuda/cuda_call.cc:121 "
    "onnxruntime::CudaCall CUDA failure 2: out of memory ; GPU=0 ; hostname=gpu-node ; "
    "file=/onnxruntime_src/onnxruntime/core/providers/cuda/cuda_allocator.cc ; line=51 ; "
    "expr=cudaMalloc((void**)&p, size);"
)
NOT_OOM = (
    "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Conv node. Status Message: "
    "CUDNN failure 3: CUDNN_STATUS_BAD_PARAM ; GPU=0 ; hostname=gpu-node ; expr=cudnnSetTensorNdDescriptor"
)
TILE = 256
#: The window sizes below (296 px windows of 256 px tiles, a 40 px halo) are DeclipNet v1's
#: geometry (receptive field 37 px, multiples of 8), so these runs name it instead of the default.
MODEL = "declipnet-v1"
# and every tile of the plan runs (skip_unclipped=False): the batches below are of the plan's four
# tiles of one window shape, where the windows sized to the clipped regions would differ in shape.


class FakeGpuEngine(OnnxEngine):
    """The real model on the CPU, presented as ``cuda:0`` (batches of up to 8, the GPU run path);
    its GPU run raises ``error`` when ``fails(batch, call number)``."""

    fails: Callable[[np.ndarray, int], bool]
    error: Exception
    instances: list[FakeGpuEngine]

    def __init__(self, model: Any = None, device: str = "cuda", threads: int | None = None) -> None:
        super().__init__(model, device="cpu", threads=threads)
        self.device, self.provider, self.max_batch = "cuda:0", "CUDAExecutionProvider", 8
        self.calls: list[tuple[tuple[int, ...], bool]] = []  # (input shape, failed)
        type(self).instances.append(self)

    def _run_bound(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        clipped = feeds["clipped"]
        failed = type(self).fails(clipped, len(self.calls))
        self.calls.append((clipped.shape, failed))
        if failed:
            raise type(self).error
        return self._session.run(["residual"], feeds)[0]


def fake_gpu(fails: Callable[[np.ndarray, int], bool], error: Exception) -> type[FakeGpuEngine]:
    """A :class:`FakeGpuEngine` class that fails when ``fails`` says, with ``error``."""
    attributes = {"fails": staticmethod(fails), "error": error, "instances": []}
    return type("FakeGpuEngine", (FakeGpuEngine,), attributes)


@pytest.fixture(scope="module")
def image(demo_rgb: np.ndarray) -> np.ndarray:
    """512 x 512 float32 of the demo photo: four 256 px tiles of one window shape (one GPU batch),
    each with clipped pixels."""
    mosaic = np.concatenate([demo_rgb, demo_rgb[::-1]], axis=0)[:512, :512]
    return (mosaic / np.float32(255)).astype(np.float32)


@pytest.fixture(scope="module")
def expected(image: np.ndarray) -> np.ndarray:
    with Declipper(MODEL, device="cpu", tile_size=TILE, skip_unclipped=False) as session:
        return session.run(image, fit="float")


def run_on(engine_class: type[FakeGpuEngine], image: np.ndarray, monkeypatch: pytest.MonkeyPatch
           ) -> tuple[np.ndarray, Any, list[warnings.WarningMessage]]:
    monkeypatch.setattr(session_module, "OnnxEngine", engine_class)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Declipper(MODEL, device="cuda", tile_size=TILE, skip_unclipped=False) as session:
            assert session.device == "cuda:0"
            out = session.run(image, fit="float")
            engine = session.engine
    return out, engine, [w for w in caught if issubclass(w.category, DeviceFallbackWarning)]


def window_pixels(shape: tuple[int, ...]) -> int:
    return shape[0] * shape[2] * shape[3]


def test_the_out_of_memory_errors_are_recognised() -> None:
    assert is_out_of_memory(RuntimeException(ARENA_OOM)) and is_out_of_memory(Fail(CUDA_OOM))
    assert is_out_of_memory(RuntimeError("CUBLAS failure 3: CUBLAS_STATUS_ALLOC_FAILED ; GPU=0"))
    assert not is_out_of_memory(Fail(NOT_OOM))


def test_a_batch_too_big_for_the_gpu_runs_in_halves(
    image: np.ndarray, expected: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory for two tiles' windows: the batch of four fails once, then runs as two halves, on
    the GPU, and every later batch is sent at the smaller size straight away."""
    budget = 2 * 296 * 296
    engine_class = fake_gpu(lambda x, _: window_pixels(x.shape) > budget, RuntimeException(ARENA_OOM))
    out, engine, fallbacks = run_on(engine_class, image, monkeypatch)
    assert not fallbacks and engine.device == "cuda:0"
    assert [(s[0], f) for s, f in engine.calls] == [(4, True), (2, False), (2, False)]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_a_tile_too_big_for_the_gpu_runs_in_smaller_tiles(
    image: np.ndarray, expected: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first three runs fail (4 tiles, 2, then 1): the tile runs as four 128 px tiles, each
    with its own halo, and the others follow at that size: 16 parts, nothing lost."""
    engine_class = fake_gpu(lambda _, call: call < 3, Fail(CUDA_OOM))
    out, engine, fallbacks = run_on(engine_class, image, monkeypatch)
    assert not fallbacks and engine.device == "cuda:0"
    assert [s[0] for s, _ in engine.calls[:3]] == [4, 2, 1]
    done = [s for s, failed in engine.calls if not failed]
    assert len(done) == 16 and all(s[0] == 1 and max(s[2:]) <= 128 + 2 * 40 for s in done)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_split_tiles_give_the_same_8_bit_photo(image: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only windows of 128 px tiles fit: every tile runs in parts, and the 8-bit output through
    the default fit (whose curve reshapes every tile, run or not) is the plain run's."""
    photo = np.round(image * 255).astype(np.uint8)
    with Declipper(MODEL, device="cpu", tile_size=TILE, skip_unclipped=False) as session:
        plain = session.run(photo)
    engine_class = fake_gpu(lambda x, _: max(x.shape[2:]) > 128 + 2 * 40, RuntimeException(ARENA_OOM))
    monkeypatch.setattr(session_module, "OnnxEngine", engine_class)
    with Declipper(MODEL, device="cuda", tile_size=TILE, skip_unclipped=False) as session:
        out = session.run(photo)
        assert session.device == "cuda:0"
    assert sum(not failed for _, failed in engine_class.instances[0].calls) == 16
    assert np.abs(out.astype(int) - plain).max() <= 1 and (out != plain).mean() < 1e-4


def test_a_gpu_without_memory_falls_back_to_the_cpu(
    image: np.ndarray, expected: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every GPU run fails: batches halve, tiles halve down to 128 px, then one warning naming
    the reason and the CPU does the rest."""
    engine_class = fake_gpu(lambda *_: True, RuntimeException(ARENA_OOM))
    out, engine, fallbacks = run_on(engine_class, image, monkeypatch)
    assert engine.device == "cpu" and engine.provider == "CPUExecutionProvider"
    assert len(fallbacks) == 1
    message = str(fallbacks[0].message)
    assert "out of GPU memory" in message and "Failed to allocate memory" in message
    assert [s[0] for s, _ in engine.calls] == [4, 2, 1, 1]  # then a 128 px part, then the CPU
    assert all(failed for _, failed in engine.calls)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_other_gpu_errors_and_cpu_out_of_memory_are_not_retried(
    image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_class = fake_gpu(lambda *_: True, Fail(NOT_OOM))
    with pytest.raises(EngineError, match="CUDNN_STATUS_BAD_PARAM") as caught:
        run_on(engine_class, image, monkeypatch)
    assert not isinstance(caught.value, GpuOutOfMemoryError)
    assert [s[0] for s, _ in engine_class.instances[0].calls] == [4]  # tried once

    monkeypatch.undo()  # a real CPU engine now

    class NoMemory:
        def run(self, *args: object) -> None:
            raise RuntimeException(ARENA_OOM)

    with Declipper(MODEL, device="cpu", tile_size=TILE, skip_unclipped=False) as session:
        session.engine._session = NoMemory()
        with pytest.raises(EngineError, match="Failed to allocate memory") as caught:
            session.run(image)
    assert not isinstance(caught.value, GpuOutOfMemoryError)


# ------------------------------------------------------------------------------ threads, memory


def in_fresh_process(code: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


_THREADS = """
import json, os, sys, threading, time
import numpy as np
import onnxruntime  # its own thread, started at import: not ours
import scipy.ndimage  # the planning's library: its BLAS pool starts at import, idle, not ours
from PIL import Image
from libdeclip import Declipper

image = np.asarray(Image.open({photo!r}).convert("RGB"))[:256, :384]
threads = {threads!r}

def tasks():
    return set(os.listdir("/proc/self/task"))

before = tasks()
seen, peak, stop = set(), [0], threading.Event()

def sample():
    while not stop.is_set():
        now = tasks()
        seen.update(now)
        peak[0] = max(peak[0], len(now - before) - 1)  # less this sampler
        time.sleep(0.0002)

sampler = threading.Thread(target=sample)
sampler.start()
with Declipper(device="cpu", threads=threads, tile_size=128) as session:
    session.run(image)
stop.set()
sampler.join()
print(json.dumps({{"peak": peak[0], "started": len(seen - before) - 1}}))
"""


@pytest.mark.parametrize("threads", [1, 3, None], ids=["threads=1", "threads=3", "default"])
def test_threads_are_bounded(threads: int | None) -> None:
    """``threads=N``: ONNX Runtime's pool (N - 1), the native loops' helpers (N - 1 at a time)
    and the pipeline's worker: at most 2N - 1 threads beyond the caller's at once; with N = 1 one
    thread in all (the worker), never more. Default N: the machine's cores."""
    found = in_fresh_process(_THREADS.format(photo=str(DEMO_PHOTO), threads=threads))
    n = threads or (os.cpu_count() or 1)
    assert 1 <= found["peak"] <= 2 * n - 1, found
    if threads == 1:
        assert found["started"] == 1, found  # every thread ever started, not only at one time
    if threads == 3:
        assert found["peak"] >= 3, found  # the pool of 2 and the worker: the setting is applied


_MEMORY = """
import json
import numpy as np
from libdeclip import Declipper

def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key + ":"))

# 4000 x 3000, smooth, with 6 blown highlights spread over it
h, w = 3000, 4000
image = np.empty((h, w, 3), np.uint8)
image[...] = (np.linspace(40, 200, w, dtype=np.float32)[None, :, None]
              * np.array([1.0, 0.9, 0.8], np.float32)).astype(np.uint8)
rng = np.random.default_rng(3)
for y, x in zip(rng.integers(50, h - 50, 6), rng.integers(50, w - 50, 6)):
    image[y - 20 : y + 20, x - 30 : x + 30] = 255
tile = 128
with Declipper(device="cpu", tile_size=tile, threads=2) as session:
    halo = session.plan(h, w).halo
    open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
    base = status("VmRSS")
    out = session.run(image)
    peak = status("VmHWM") - base
print(json.dumps({{"peak": peak, "image": image.nbytes, "clipped": int((image == 255).sum()),
                  "window": (tile + 2 * halo) ** 2, "changed": int((out != image).any(axis=2).sum())}}))
"""


def test_peak_memory_follows_the_tile_size() -> None:
    """A 12-megapixel image with 128 px tiles: the run's peak extra memory stays within the
    README's bound (one output copy, 4 bytes per clipped value, about 1.2 KB per pixel of a tile's
    window, some slack), far below even one float32 copy of the image in model space."""
    found = in_fresh_process(_MEMORY.format())
    assert found["changed"] > 0
    bound = found["image"] + 4 * found["clipped"] + 1200 * found["window"] + 24 * 2**20
    assert found["peak"] <= bound, found
    assert found["peak"] < 12 * found["image"] // 3, found  # a float32 model-space copy
