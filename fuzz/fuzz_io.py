"""Fuzz ``libdeclip.read_image`` and the ``libdeclip`` command (``info`` and ``declip``) with mutated
image files; see fuzz/README.md.

    python -m fuzz.fuzz_io [--seconds 600] [--seed 0] [--jobs 1] [--crashes tests/data/fuzz_crashes]

Each input is a seed file (fuzz/seeds.py) or an earlier input that showed new behaviour, mutated
by fuzz/mutate.py, written to a file and handed to a worker process (fuzz/worker.py), which runs
the targets and checks the invariants. The driver watches the worker: death by a signal is a
crash, no answer within ``--timeout`` seconds a hang, resident memory beyond ``--memory-mb`` above
its idle size a memory finding; each kills and restarts the worker. Every finding is saved once
per signature (target, kind, exception type, where it was raised) in ``--crashes`` with a JSON
file beside it that says what happened; notes (a dependency's warning on stderr, an error line that
does not name the file) go to ``--work``/notes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fuzz import seeds as seedlib
from fuzz.mutate import mutate, sniff

REPO = Path(__file__).resolve().parent.parent
SUFFIXES = (".png", ".jpg", ".tif", ".tiff", ".exr", ".webp", ".avif", ".heic",
            ".dng", ".nef", ".cr2", ".arw", ".kdc", ".bin")
METHODS = ["declipnet"] * 6 + ["cross-channel", "inpaint-opposed", "biharmonic"]
FITS = [None, None, None, "clamp", "clamp", "compress", "float"]
MAX_CORPUS = 3000


def declip_options(rng: random.Random) -> list[str]:
    opts = ["--method", rng.choice(METHODS)]
    fit = rng.choice(FITS)
    if fit:
        opts += ["--fit", fit]
    if rng.random() < 0.1 and opts[1] == "declipnet":
        opts += ["--feather", str(rng.choice((1, 3)))]
    if rng.random() < 0.2:
        opts += ["--format", rng.choice(("dng", "tiff32", "tiff16"))]  # RAW inputs only; ignored otherwise
    return opts


def _normalise(message: str) -> str:
    """A message without paths and numbers, for telling behaviours apart."""
    message = re.sub(r"/\S+", "PATH", message)
    return re.sub(r"\d+", "#", message)[:120]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:60] or "x"


class WorkerDied(Exception):
    pass


class Worker:
    """One worker process and the pipe of its answers."""

    def __init__(self, work: Path, index: int, env: dict[str, str], timeout: float, memory_kb: int) -> None:
        self.dir = work / f"worker{index}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = self.dir / "out"
        self.out_dir.mkdir(exist_ok=True)
        self.log_path = self.dir / "worker.log"
        self.env, self.timeout, self.memory_kb = env, timeout, memory_kb
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = -1
        self.start()

    def start(self) -> None:
        self.stop()
        self.restarts += 1
        self.log_path.write_text("")
        read_fd, write_fd = os.pipe()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fuzz.worker", str(write_fd), str(self.log_path)],
                stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(write_fd,), cwd=REPO, env=self.env,
            )
        os.close(write_fd)
        self.fd, self.buffer = read_fd, b""
        ready = self._answer(120.0)
        if ready is None or not ready.get("ready"):
            raise RuntimeError(f"the worker did not start; see {self.log_path}")
        self.idle_kb = int(ready["rss_kb"])

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            if self.proc.stdin:
                self.proc.stdin.close()
            os.close(self.fd)
            self.proc = None

    def _rss_kb(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:  # type: ignore[union-attr]
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _answer(self, timeout: float) -> dict[str, Any] | None:
        """The next answer line; None on timeout; WorkerDied when the process ends; ('memory', kb)
        raised as MemoryError when it grows past the bound."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], min(0.2, left))
            if ready:
                chunk = os.read(self.fd, 1 << 20)
                if not chunk:
                    self.proc.wait()
                    raise WorkerDied(self.proc.returncode)
                self.buffer += chunk
            elif self.proc.poll() is not None:
                raise WorkerDied(self.proc.returncode)
            elif self.memory_kb and self._rss_kb() - getattr(self, "idle_kb", 0) > 2 * self.memory_kb:
                raise MemoryError(self._rss_kb())
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """The worker's answer, or a finding of the driver's own: crash, hang or memory."""
        assert self.proc is not None and self.proc.stdin is not None
        request = dict(request, out_dir=str(self.out_dir), dump_after=max(1.0, self.timeout - 2))
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            answer = self._answer(self.timeout)
        except (WorkerDied, BrokenPipeError) as exc:
            code = self.proc.poll() if isinstance(exc, BrokenPipeError) else exc.args[0]
            kind = f"crash-{signal.Signals(-code).name}" if code is not None and code < 0 else f"exit-{code}"
            return self._driver_finding(kind, f"the worker process ended ({kind})")
        except MemoryError as exc:
            return self._driver_finding("memory", f"resident memory reached {exc.args[0] // 1024} MiB")
        if answer is None:
            time.sleep(1.5)  # let faulthandler's dump (timeout - 2 s) reach the log
            return self._driver_finding("hang", f"no answer within {self.timeout:g} s")
        return answer

    def _driver_finding(self, kind: str, message: str) -> dict[str, Any]:
        self.stop()
        log = self.log_path.read_text(errors="replace")
        request_log = log[log.rfind("--- request") :]
        frames = re.findall(r'File "([^"]+)", line \d+ in (\w+)', request_log)
        # the innermost frame of the current thread, for de-duplication
        where = f"{Path(frames[0][0]).name}:{frames[0][1]}" if frames else "?"
        self.start()
        return {"results": [{"target": "process", "status": "bug", "kind": kind, "type": kind,
                             "message": message, "raised_in": where, "libdeclip_frame": "-",
                             "traceback": request_log[-6000:]}], "seconds": self.timeout, "growth_kb": 0}


class Fuzzer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.work).resolve()
        self.crashes = Path(args.crashes).resolve()
        self.notes_dir = self.work / "notes"
        for d in (self.work, self.crashes, self.notes_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.seeds = seedlib.corpus(self.work / "seeds")
        self.seed_weights = [3.0 if s.name.startswith("gen-") else 1.0 for s in self.seeds]
        self.corpus: list[seedlib.Seed] = []
        self.behaviours: set[tuple[Any, ...]] = set()
        self.findings: dict[tuple[str, ...], dict[str, Any]] = {}
        self.notes: dict[tuple[str, ...], dict[str, Any]] = {}
        self.outcomes: Counter[str] = Counter()
        self.execs = 0
        self.restarts = 0
        self.lock = threading.Lock()
        # findings saved by earlier runs: hitting them again is counted, not saved again
        self.known: dict[tuple[str, ...], dict[str, Any]] = {}
        for sidecar in sorted(self.crashes.glob("*.json")):
            try:
                meta = json.loads(sidecar.read_text())
                self.known[self._key(meta)] = dict(meta, count=0)
            except (ValueError, KeyError):
                continue
        from libdeclip.color import icc_profile

        self.icc = icc_profile("display-p3")

    def pick(self, rng: random.Random) -> seedlib.Seed:
        """Half the time an input that showed new behaviour, else a seed: the valid files made
        here three times as often as the broken files of the bad-input corpus."""
        if self.corpus and rng.random() < 0.5:
            return rng.choice(self.corpus)
        return rng.choices(self.seeds, weights=self.seed_weights)[0]

    def record(self, seed: seedlib.Seed, data: bytes, suffix: str, how: str, options: list[str] | None,
               answer: dict[str, Any]) -> None:
        growth_mb = answer.get("growth_kb", 0) / 1024
        results = list(answer["results"])
        if self.args.memory_mb and growth_mb > self.args.memory_mb:
            results.append({"target": "process", "status": "bug", "kind": "memory", "type": "memory",
                            "message": f"peak resident memory grew by {growth_mb:.0f} MiB in one input",
                            "raised_in": sniff(data), "libdeclip_frame": "-"})
        behaviour = tuple(sorted(
            (r["target"], r["status"], r.get("type", ""), _normalise(r.get("message", ""))) for r in results
        ))
        with self.lock:
            self.execs += 1
            for r in results:
                self.outcomes[f"{r['target']}: {r['status']}"] += 1
            if behaviour not in self.behaviours:
                self.behaviours.add(behaviour)
                if len(self.corpus) >= MAX_CORPUS:
                    self.corpus.pop(random.randrange(len(self.corpus)))
                self.corpus.append(seedlib.Seed(f"{seed.name}+{how}", suffix, data))
            for r in results:
                if r["status"] in ("bug", "note"):
                    self._save(r, seed, data, suffix, how, options)

    @staticmethod
    def _key(r: dict[str, Any]) -> tuple[str, ...]:
        """What tells findings apart: target, kind, exception type and where it was raised (notes:
        target, kind and message)."""
        if r["status"] == "bug":
            return (r["target"], r["kind"], r.get("type", ""), r.get("raised_in", ""),
                    r.get("libdeclip_frame", ""))
        return (r["target"], r["kind"], _normalise(r.get("message", ""))[:60])

    def _save(self, r: dict[str, Any], seed: seedlib.Seed, data: bytes, suffix: str, how: str,
              options: list[str] | None) -> None:
        bug = r["status"] == "bug"
        key = self._key(r)
        if bug and key in self.known:
            self.known[key]["count"] += 1
            return
        store = self.findings if bug else self.notes
        if key in store:
            store[key]["count"] += 1
            return
        sha = hashlib.sha256(data).hexdigest()[:10]
        parts = [r["target"], r["kind"], r.get("type", ""), r.get("raised_in", "").replace(":", "-")]
        name = "-".join(_safe(p) for p in parts if p) + f"-{sniff(data)}-{sha}{suffix}"
        folder = self.crashes if bug else self.notes_dir
        (folder / name).write_bytes(data)
        meta = {"file": name, "count": 1, "seed": seed.name, "mutations": how, "suffix": suffix,
                "declip_options": options, **{k: v for k, v in r.items() if k != "status"},
                "status": r["status"]}
        (folder / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
        store[key] = meta
        label = "FINDING" if bug else "note"
        print(f"[{time.strftime('%H:%M:%S')}] {label}: {r['target']} {r['kind']} {r.get('type', '')} "
              f"{r.get('raised_in', '')}: {r.get('message', '')[:160]} -> {folder.name}/{name}", flush=True)

    def loop(self, index: int, deadline: float) -> None:
        rng = random.Random(self.args.seed * 1000 + index)
        env = dict(os.environ, LIBDECLIP_MAX_PIXELS=str(self.args.max_pixels), PYTHONFAULTHANDLER="1")
        worker = Worker(self.work, index, env, self.args.timeout, self.args.memory_mb * 1024)
        path_dir = self.work / f"worker{index}" / "in"
        path_dir.mkdir(exist_ok=True)
        others = [s.data for s in self.seeds]
        n = 0
        try:
            while time.monotonic() < deadline:
                seed = self.pick(rng)
                data, how = mutate(seed.data, rng, others, self.icc)
                suffix = seed.suffix
                if rng.random() < 0.05:
                    suffix = rng.choice(SUFFIXES)
                    how += f"+suffix{suffix}"
                for old in path_dir.iterdir():
                    old.unlink()
                path = path_dir / f"input{suffix}"
                path.write_bytes(data)
                options = declip_options(rng) if rng.random() < self.args.declip_share else None
                answer = worker.run({"id": n, "path": str(path), "declip": options,
                                     "declip_max_pixels": self.args.declip_max_pixels})
                self.record(seed, data, suffix, how, options, answer)
                n += 1
        finally:
            with self.lock:
                self.restarts += worker.restarts
            worker.stop()

    def run(self) -> int:
        start = time.monotonic()
        deadline = start + self.args.seconds
        threads = [threading.Thread(target=self.loop, args=(i, deadline), daemon=True)
                   for i in range(self.args.jobs)]
        for t in threads:
            t.start()
        print(f"fuzzing read_image and the CLI for {self.args.seconds:g} s with {self.args.jobs} worker(s), "
              f"{len(self.seeds)} seeds, pixel limit {self.args.max_pixels:,}", flush=True)
        last = start
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=1.0)
            now = time.monotonic()
            if now - last >= self.args.report_every:
                last = now
                self._progress(now - start)
        elapsed = time.monotonic() - start
        self._progress(elapsed)
        return self._summary(elapsed)

    def _progress(self, elapsed: float) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {elapsed:6.0f} s  {self.execs} execs  "
              f"{self.execs / max(elapsed, 1e-9):.1f} exec/s  corpus {len(self.corpus)}  "
              f"findings {len(self.findings)}  notes {len(self.notes)}", flush=True)

    def _summary(self, elapsed: float) -> int:
        summary = {
            "seconds": round(elapsed, 1), "executions": self.execs,
            "exec_per_s": round(self.execs / max(elapsed, 1e-9), 2), "seed": self.args.seed,
            "seeds": len(self.seeds), "corpus_added": len(self.corpus), "worker_restarts": self.restarts,
            "pixel_limit": self.args.max_pixels, "outcomes": dict(sorted(self.outcomes.items())),
            "findings": list(self.findings.values()), "notes": list(self.notes.values()),
            "known_findings_hit": [m for m in self.known.values() if m["count"]],
        }
        for entry in summary["findings"] + summary["notes"] + summary["known_findings_hit"]:
            entry.pop("traceback", None)
        (self.work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"\n{self.execs} executions in {elapsed:.0f} s ({summary['exec_per_s']} exec/s), "
              f"{len(self.corpus)} inputs added to the corpus, {summary['worker_restarts']} worker restarts")
        print("outcomes: " + ", ".join(f"{k} {v}" for k, v in summary["outcomes"].items()))
        hit = summary["known_findings_hit"]
        print(f"known findings (already in {self.crashes}) hit again: {len(hit)}")
        for meta in hit:
            print(f"  {meta['count']:6d} x {meta['target']} {meta['kind']} {meta.get('type', '')} "
                  f"{meta.get('raised_in', '')}  [{meta['file']}]")
        print(f"new findings: {len(self.findings)} (saved in {self.crashes})")
        for meta in self.findings.values():
            print(f"  {meta['count']:6d} x {meta['target']} {meta['kind']} {meta.get('type', '')} "
                  f"{meta.get('raised_in', '')}: {meta.get('message', '')[:120]}  [{meta['file']}]")
        print(f"notes: {len(self.notes)} (saved in {self.notes_dir})")
        for meta in self.notes.values():
            print(f"  {meta['count']:6d} x {meta['target']} {meta['kind']}: {meta.get('message', '')[:120]}")
        print(f"summary: {self.work / 'summary.json'}")
        return 1 if self.findings else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=600, help="how long to fuzz (default 600)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the mutations (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--timeout", type=float, default=30,
                   help="seconds per input before it is a hang (default 30)")
    p.add_argument("--max-pixels", type=int, default=4_000_000,
                   help="LIBDECLIP_MAX_PIXELS for the targets (default 4 MP, so that the memory bound holds)")
    p.add_argument("--memory-mb", type=int, default=768,
                   help="peak resident growth in one input counted as a finding (default 768 MiB; 0: off)")
    p.add_argument("--declip-share", type=float, default=0.5, help="share of inputs also run through "
                   "`libdeclip declip` (when they read as an image; default 0.5)")
    p.add_argument("--declip-max-pixels", type=int, default=160_000,
                   help="declip only images up to this many pixels (default 160,000)")
    p.add_argument("--crashes", default=str(REPO / "tests" / "data" / "fuzz_crashes"),
                   help="where findings are saved (default tests/data/fuzz_crashes)")
    p.add_argument("--work", default=str(REPO / "build" / "fuzz"), help="scratch folder (default build/fuzz)")
    p.add_argument("--report-every", type=float, default=30, help="seconds between progress lines")
    args = p.parse_args(argv)
    return Fuzzer(args).run()


if __name__ == "__main__":
    sys.exit(main())
