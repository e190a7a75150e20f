"""Declip a whole photo library on a pool of workers (Ray), resumably.

    libdeclip batch SRC DST [--local | --ray ADDRESS] [--workers N] [--list FILE] [declip options]

The photos below SRC (or the paths listed in a file) are declipped into DST, mirroring the folder
tree. Each output is made exactly as ``libdeclip declip`` makes it (the same reading, repair and
writer, with the same options), written to a hidden temporary file next to its place, recorded in
the manifest ``DST/.libdeclip-batch.jsonl`` with its sha256, and only then renamed into place. The
manifest is appended to by the workers, one line per file and event, flushed to disk before the
rename, so whatever stops a run (a crash, a kill, a lost node) a second run with the same command:

- skips every file whose manifest entry matches its source (size and modification time, or the
  source's sha256) and whose output is there with the recorded size (``--verify``: and sha256);
- does every other file, so none is lost and none that landed is done again.

A killed run's unfinished temporary files are removed by the next run (one run per DST at a
time). A file that fails is listed with its error (in the manifest and at the end) and never stops the
run; the next run tries it again. Ray is an optional dependency (``pip install libdeclip[ray]``):
``--local`` starts a Ray instance on this machine (``ray.init(num_cpus=...)``), ``--ray ADDRESS``
joins a cluster; the workers are Ray Data actors, each holding one :class:`~libdeclip.Declipper`
(GPU actors with ``--gpus-per-worker``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libdeclip.engine import sha256_file
from libdeclip.io import read_image
from libdeclip.options import RepairOptions
from libdeclip.outputs import INPUT_SUFFIXES, OutputOptions, output_suffix
from libdeclip.session import Declipper
from libdeclip.workflow import repair_file, write_repair

__all__ = ["MANIFEST_NAME", "Job", "Summary", "is_done", "load_manifest", "plan_jobs", "run_batch"]

MANIFEST_NAME = ".libdeclip-batch.jsonl"
#: A worker's output while it is written: hidden, next to its place, renamed once recorded.
_PART = re.compile(r"\..+\.[0-9a-f]{8}\.part(\.[A-Za-z0-9]+)?")


@dataclass(frozen=True)
class Job:
    """One photo: its source, its path relative to the source root (the manifest's key), and its
    output in the mirrored tree."""

    src: Path
    rel: str
    out: Path


@dataclass
class Summary:
    planned: int = 0
    skipped: int = 0  # already done by an earlier run
    done: int = 0
    failed: int = 0
    megapixels: float = 0.0
    seconds: float = 0.0
    failures: list[tuple[str, str]] | None = None

    def line(self) -> str:
        rate = self.done / self.seconds if self.seconds else 0.0
        mp = self.megapixels / self.seconds if self.seconds else 0.0
        return (f"{self.done} declipped, {self.skipped} already done, {self.failed} failed of "
                f"{self.planned} in {self.seconds:.1f} s ({rate:.2f} images/s, {mp:.2f} MP/s)")


def output_path(rel: str, dst: Path, raw_format: str | None) -> Path:
    """Where ``rel``'s output goes: the same place below ``dst``; a camera RAW becomes DNG or TIFF
    (as ``libdeclip declip`` names it)."""
    p = Path(rel)
    return dst / p.with_suffix(output_suffix(p, raw_format))


def plan_jobs(
    src: Path | None, dst: Path, listed: Iterable[str] = (), raw_format: str | None = None
) -> list[Job]:
    """Every photo below ``src`` (hidden files and folders, and ``dst`` itself, left out), or the
    paths in ``listed`` (relative to ``src`` when given, else as they are), in sorted order."""
    suffixes = INPUT_SUFFIXES
    dst = dst.resolve()
    jobs: list[Job] = []
    if src is not None and not listed:
        root = src.resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"{src}: not a folder")
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() != dst)
            for name in sorted(filenames):
                path = here / name
                if not name.startswith(".") and path.suffix.lower() in suffixes:
                    rel = path.relative_to(root).as_posix()
                    jobs.append(Job(path, rel, output_path(rel, dst, raw_format)))
        return sorted(jobs, key=lambda j: j.rel)
    for item in listed:
        item = item.strip()
        if not item:
            continue
        path = (src / item) if src is not None and not Path(item).is_absolute() else Path(item)
        if src is not None and path.resolve().is_relative_to(src.resolve()):
            rel = path.resolve().relative_to(src.resolve()).as_posix()
        else:
            rel = path.resolve().as_posix().lstrip("/")
        jobs.append(Job(path, rel, output_path(rel, dst, raw_format)))
    return sorted(jobs, key=lambda j: j.rel)


def load_manifest(dst: Path) -> dict[str, dict[str, Any]]:
    """The last "done" entry of each file in ``dst``'s manifest (a torn last line is ignored)."""
    done: dict[str, dict[str, Any]] = {}
    path = dst / MANIFEST_NAME
    if not path.exists():
        return done
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill: that file's output was never renamed into place
            if entry.get("status") == "done":
                done[entry["rel"]] = entry
    return done


def is_done(job: Job, entry: dict[str, Any] | None, verify: bool = False) -> bool:
    """Whether ``job`` was finished by an earlier run: the entry matches the source as it is now
    (size and time, else its sha256) and the output is in place with the recorded size (and, with
    ``verify``, sha256)."""
    if entry is None:
        return False
    try:
        src, out = job.src.stat(), job.out.stat()
    except OSError:
        return False
    if src.st_size != entry["src_size"]:
        return False
    if src.st_mtime_ns != entry["src_mtime_ns"] and sha256_file(job.src) != entry["src_sha256"]:
        return False
    if out.st_size != entry["out_size"]:
        return False
    return not verify or sha256_file(job.out) == entry["out_sha256"]


def _append(manifest: Path, entry: dict[str, Any]) -> None:
    """One line, written at once (O_APPEND: lines from several processes never interleave) and on
    disk before the caller goes on."""
    data = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(manifest, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class Worker:
    """Declips one file at a time with one :class:`~libdeclip.Declipper` (a Ray Data actor)."""

    def __init__(self, options: RepairOptions, output: OutputOptions, manifest: str, run: str, device: str,
                 threads: int | None, tile_size: int | None = None):
        self.options, self.output = options.replace(device=device), output
        self.manifest, self.run = Path(manifest), run
        self.session = Declipper.from_options(self.options, threads=threads, tile_size=tile_size)
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows = [self.one(str(s), str(r), str(o)) for s, r, o in zip(batch["src"], batch["rel"], batch["out"],
                                                                     strict=True)]
        return {k: [row[k] for row in rows] for k in ("rel", "status", "error", "megapixels", "seconds")}

    def one(self, src: str, rel: str, out: str) -> dict[str, Any]:
        start = time.perf_counter()
        tmp = Path(out).with_name(f".{Path(out).stem}.{uuid.uuid4().hex[:8]}.part{Path(out).suffix}")
        try:
            source = os.stat(src)
            image = read_image(src)
            repaired, _notes = repair_file(image, self.options, self.session, False)
            # written as libdeclip declip writes it
            write_repair(tmp, repaired, self.output, self.options.fit_name, overwrite=True)
            seconds = time.perf_counter() - start
            h, w = image.pixels.shape[:2]
            entry = {
                "status": "done", "rel": rel, "out": Path(out).name, "run": self.run, "worker": self.name,
                "src_size": source.st_size, "src_mtime_ns": source.st_mtime_ns,
                "src_sha256": sha256_file(Path(src)),
                "out_size": tmp.stat().st_size, "out_sha256": sha256_file(tmp), "megapixels": h * w / 1e6,
                "seconds": round(seconds, 3),
            }
            _append(self.manifest, entry)  # recorded first, then renamed: see the module's docstring
            os.replace(tmp, out)
            return {"rel": rel, "status": "done", "error": "", "megapixels": h * w / 1e6, "seconds": seconds}
        except Exception as exc:  # one file's failure never stops the run
            tmp.unlink(missing_ok=True)
            message = str(exc) if str(src) in str(exc) else f"{src}: {type(exc).__name__}: {exc}"
            _append(self.manifest, {"status": "failed", "rel": rel, "run": self.run, "error": message})
            return {"rel": rel, "status": "failed", "error": message, "megapixels": 0.0,
                    "seconds": time.perf_counter() - start}


def _ray(address: str | None, cpus: int | None) -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError("libdeclip batch needs Ray: pip install 'libdeclip[ray]'") from None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=cpus or os.cpu_count() or 1, **kwargs)
    return ray


def run_batch(
    jobs: Sequence[Job], dst: Path, options: RepairOptions, output: OutputOptions | None = None, *,
    address: str | None = None, workers: int | None = None, cpus: int | None = None,
    gpus_per_worker: float = 0.0, threads_per_worker: int | None = None, tile_size: int | None = None,
    device: str = "cpu", verify: bool = False, progress: bool = True,
) -> Summary:
    """Declip ``jobs`` into ``dst`` with Ray (a local instance unless ``address``); see the module.
    ``output``: how each file is written (the RAW format, exposure and PNG level; where it goes
    is the job's)."""
    from tqdm import tqdm

    started = time.perf_counter()
    dst.mkdir(parents=True, exist_ok=True)
    manifest = dst / MANIFEST_NAME
    for part in dst.rglob(".*.part*"):  # what a killed run's workers were writing (never renamed)
        if _PART.fullmatch(part.name):
            part.unlink(missing_ok=True)
    finished = load_manifest(dst)
    todo = [j for j in jobs if not is_done(j, finished.get(j.rel), verify)]
    summary = Summary(planned=len(jobs), skipped=len(jobs) - len(todo), failures=[])
    if not todo:
        summary.seconds = time.perf_counter() - started
        return summary
    for j in todo:
        j.out.parent.mkdir(parents=True, exist_ok=True)
    ray = _ray(address, cpus)
    import logging

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours below counts photos; Ray Data's count blocks
    for name in ("ray.data", "ray"):
        logging.getLogger(name).setLevel(logging.WARNING)
    total_cpus = int(ray.cluster_resources().get("CPU", 1))
    n = workers or max(1, total_cpus)
    n = min(n, len(todo))
    per_worker_cpus = max(0.25, min(1.0, total_cpus / n - 0.1))  # room for Ray Data's own tasks
    run = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    items = [{"src": str(j.src), "rel": j.rel, "out": str(j.out)} for j in todo]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    results = ds.map_batches(
        Worker, batch_size=1, concurrency=n, num_cpus=per_worker_cpus, num_gpus=gpus_per_worker or None,
        fn_constructor_kwargs={"options": options, "output": output or OutputOptions(),
                               "manifest": str(manifest), "run": run,
                               "device": "cuda" if gpus_per_worker else device,
                               "threads": threads_per_worker, "tile_size": tile_size},
    )
    bar = tqdm(total=len(todo), desc="photos", unit="photo", disable=not progress, file=sys.stderr)
    for row in results.iter_rows():
        if row["status"] == "done":
            summary.done += 1
            summary.megapixels += float(row["megapixels"])
        else:
            summary.failed += 1
            assert summary.failures is not None
            summary.failures.append((str(row["rel"]), str(row["error"])))
            bar.write(f"error: {row['error']}", file=sys.stderr)
        elapsed = time.perf_counter() - started
        bar.set_postfix_str(f"{summary.done / elapsed:.2f} img/s, {summary.megapixels / elapsed:.2f} MP/s, "
                            f"{summary.failed} failed")
        bar.update(1)
    bar.close()
    summary.seconds = time.perf_counter() - started
    return summary
