"""Run saved fuzzer inputs through the targets again and say what happens.

    python -m fuzz.replay tests/data/fuzz_crashes/FILE... [--json]

Each file is copied into a temporary folder (the saved input is never touched) and run exactly as
the fuzzer ran it (fuzz/worker.py): ``read_image``, ``libdeclip info`` and, with the options of
its JSON file beside it, ``libdeclip declip``. Prints each target's outcome (``--json``: the
answers as JSON lines), with the traceback of anything unexpected; more than 768 MiB of peak memory
growth or 30 s for one file are findings too, as in the fuzzer (under a 3 GiB address-space limit,
so that a memory finding fails with a MemoryError rather than exhausting the machine). The exit
code is 0 when no invariant broke, 1 when one did; a crash of the interpreter ends this process as
it ended the worker. The pixel limit is the fuzzer's (4 MP) unless LIBDECLIP_MAX_PIXELS says
otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

DECLIP_MAX_PIXELS = 160_000


def replay(path: Path) -> dict[str, Any]:
    from fuzz import worker

    sidecar = path.with_name(path.name + ".json")
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    options = meta.get("declip_options")
    if options is None and meta.get("target") == "declip":
        options = []
    with tempfile.TemporaryDirectory(prefix="libdeclip-replay-") as tmp:
        folder = Path(tmp)
        src = folder / "in" / f"input{meta.get('suffix', path.suffix)}"
        src.parent.mkdir()
        shutil.copyfile(path, src)
        out_dir = folder / "out"
        out_dir.mkdir()
        answer = worker.handle({"id": 0, "path": str(src), "out_dir": str(out_dir), "declip": options,
                                "declip_max_pixels": DECLIP_MAX_PIXELS, "dump_after": 300}, sys.stderr)
    answer["file"] = str(path)
    return answer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--json", action="store_true", help="print the answers as JSON lines")
    p.add_argument("--memory-mb", type=int, default=768,
                   help="peak resident growth in one input that is a finding (default 768, as the fuzzer)")
    p.add_argument("--seconds", type=float, default=30, help="time per input that is a hang (default 30)")
    p.add_argument("--address-space-mb", type=int, default=3072,
                   help="address space limit of this process (default 3072; 0: none), so that a "
                   "memory finding ends in a MemoryError instead of exhausting the machine")
    args = p.parse_args(argv)
    os.environ.setdefault("LIBDECLIP_MAX_PIXELS", "4000000")
    if args.address_space_mb:
        import resource

        limit = args.address_space_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    broken = 0
    for path in args.files:
        answer = replay(path)
        grew = answer["growth_kb"] // 1024
        if grew > args.memory_mb:
            answer["results"].append({"target": "process", "status": "bug", "kind": "memory",
                                      "type": "memory", "message": f"peak memory grew by {grew} MiB"})
        if answer["seconds"] > args.seconds:
            answer["results"].append({"target": "process", "status": "bug", "kind": "hang", "type": "hang",
                                      "message": f"took {answer['seconds']:.0f} s"})
        bugs = [r for r in answer["results"] if r["status"] == "bug"]
        broken += bool(bugs)
        if args.json:
            print(json.dumps(answer), flush=True)
            continue
        print(f"{path}: {'BROKEN' if bugs else 'ok'} ({answer['seconds']:.2f} s, "
              f"peak growth {answer['growth_kb'] // 1024} MiB)")
        for r in answer["results"]:
            print(f"  {r['target']:8s} {r['status']:6s} {r.get('kind', '')} {r.get('type', '')}: "
                  f"{r.get('message', '')[:200]}")
            if r["status"] == "bug" and r.get("traceback"):
                print("    " + r["traceback"].rstrip().replace("\n", "\n    "))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
