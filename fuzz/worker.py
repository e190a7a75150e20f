"""The fuzzer's target process: runs ``read_image`` and the ``libdeclip`` command on each file the
driver (fuzz/fuzz_io.py) names, checks the invariants and answers with what happened.

    python -m fuzz.worker RESPONSE_FD LOG_PATH

Requests arrive as JSON lines on standard input; answers go out as JSON lines on RESPONSE_FD (the
process's own stdout and stderr belong to the decoders: C libraries print there). A crash of the
interpreter, a hang or a memory blow-up is seen by the driver, which kills and restarts this
process; ``faulthandler`` writes the Python stack of a crash (or of a request that runs past
its time) to LOG_PATH, so the driver can say where it happened.

Invariants checked here (anything else is a finding, "bug" in an answer):

- ``read_image``: returns an :class:`~libdeclip.Image` of a supported layout and dtype, finite
  float pixels, or raises a :class:`~libdeclip.DeclipError` whose message is one line naming the file;
- ``libdeclip info FILE`` and ``libdeclip declip FILE -o OUT``: return 0 or 1, never raise, print
  no traceback and no "unexpected" error, and write every error as one ``error:`` line naming the
  file (other stderr lines, such as a dependency's warning, are noted as noise, not bugs);
- ``declip``: an output exists exactly when the exit code is 0, nothing else is left in the output
  folder, the output reads back with the input's shape and dtype, and with ``--fit clamp`` (or a
  float image) into a lossless format every unclipped value is unchanged and clipped values only
  move outwards; when it fails, ``libdeclip.declip`` on the same pixels raises a ``DeclipError``
  (the command prints any ValueError as a plain error line);
- the input file is never modified.
"""

from __future__ import annotations

import faulthandler
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

LOSSLESS = {".png", ".tif", ".tiff", ".exr"}
SUMMARY_LINE = re.compile(r"^\d+ of \d+ files declipped, \d+ failed$")
UNEXPECTED = re.compile(r"unexpected ([A-Za-z_][\w.]*): ?(.*)")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Start the peak resident size (VmHWM) afresh (Linux 4.0+); harmless where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _where(exc: BaseException) -> dict[str, str]:
    """The frame that raised, and the deepest libdeclip frame on the way (for de-duplication)."""
    frames = traceback.extract_tb(exc.__traceback__)
    inner = frames[-1] if frames else None
    ours = [f for f in frames if "/libdeclip/" in f.filename]
    return {
        "raised_in": f"{Path(inner.filename).name}:{inner.name}" if inner else "?",
        "libdeclip_frame": f"{Path(ours[-1].filename).name}:{ours[-1].name}" if ours else "-",
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
    }


def _bug(target: str, kind: str, **details: Any) -> dict[str, Any]:
    return {"target": target, "status": "bug", "kind": kind, **details}


def _note(target: str, kind: str, **details: Any) -> dict[str, Any]:
    return {"target": target, "status": "note", "kind": kind, **details}


def _check_message(target: str, message: str, path: Path) -> list[dict[str, Any]]:
    notes = []
    if "\n" in message:
        notes.append(_bug(target, "multi-line-error", message=message[:500]))
    if path.name not in message:
        notes.append(_note(target, "unnamed-error", message=message[:300]))
    return notes


def run_read(path: Path) -> tuple[list[dict[str, Any]], Any]:
    import libdeclip

    try:
        image = libdeclip.read_image(path)
    except libdeclip.DeclipError as exc:
        msg = str(exc)
        error = {"target": "read", "status": "error", "type": type(exc).__name__, "message": msg[:300]}
        return [error, *_check_message("read", msg, path)], None
    except Exception as exc:  # the finding this fuzzer looks for
        bug = _bug("read", "exception", type=type(exc).__name__, message=str(exc)[:500], **_where(exc))
        return [bug], None
    px = image.pixels
    problems = []
    if not isinstance(px, np.ndarray):
        problems.append(f"pixels are a {type(px).__name__}")
    else:
        if px.dtype.type not in (np.uint8, np.uint16, np.float16, np.float32):
            problems.append(f"dtype {px.dtype}")
        if not (px.ndim == 2 or (px.ndim == 3 and px.shape[2] in (2, 3, 4))):
            problems.append(f"shape {px.shape}")
        if px.size == 0:
            problems.append(f"empty shape {px.shape}")
        if px.dtype.kind == "f" and px.size and not np.isfinite(px).all():
            problems.append("NaN or infinite pixels")
    if problems:
        return [_bug("read", "bad-image", type="Image", message="; ".join(problems))], None
    return [{"target": "read", "status": "ok", "shape": list(px.shape), "dtype": px.dtype.name}], image


class _Captured:
    """Standard output and error of this process, file descriptors 1 and 2 (so that what C
    libraries print is caught too), into temporary files."""

    def __enter__(self) -> _Captured:
        sys.stdout.flush()
        sys.stderr.flush()
        self.files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
        self.saved = [os.dup(1), os.dup(2)]
        os.dup2(self.files[0].fileno(), 1)
        os.dup2(self.files[1].fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved, strict=True):
            os.dup2(saved, fd)
            os.close(saved)
        self.out, self.err = (self._text(f) for f in self.files)

    @staticmethod
    def _text(f: Any) -> str:
        f.seek(0)
        text = f.read(200_000).decode("utf-8", "replace")
        f.close()
        return text


def run_cli(target: str, argv: list[str], src: Path) -> tuple[list[dict[str, Any]], int | None]:
    from libdeclip import cli

    escaped: BaseException | None = None
    rc: Any = None
    with _Captured() as cap:
        try:
            rc = cli.main(argv)
        except SystemExit as exc:  # argparse: our arguments are valid, so this is a finding too
            rc, escaped = exc.code, exc
        except Exception as exc:
            escaped = exc
    results: list[dict[str, Any]] = []
    if escaped is not None:
        results.append(_bug(target, "escaped", type=type(escaped).__name__, message=str(escaped)[:500],
                            **_where(escaped)))
        return results, None
    if rc not in (0, 1):
        results.append(_bug(target, "exit-code", type=str(rc), message=cap.err[-500:]))
    if "Traceback (most recent call last)" in cap.err or "Traceback (most recent call last)" in cap.out:
        results.append(_bug(target, "traceback", type="traceback", message=cap.err[-2000:]))
    errors = []
    for line in cap.err.splitlines():
        line = line.strip()
        if not line or SUMMARY_LINE.match(line):
            continue
        if line.startswith("error: "):
            errors.append(line)
            m = UNEXPECTED.search(line)
            if m:
                results.append(_bug(target, "unexpected", type=m.group(1), message=line[:500]))
            elif src.name not in line:
                results.append(_note(target, "unnamed-error", message=line[:300]))
        else:
            results.append(_note(target, "stderr-noise", message=line[:300]))
    status = "ok" if rc == 0 else "error"
    results.insert(0, {"target": target, "status": status, "type": f"rc{rc}",
                       "message": errors[0][:300] if errors else ""})
    return results, rc


def _colour(pixels: np.ndarray) -> np.ndarray:
    px = pixels[..., None] if pixels.ndim == 2 else pixels
    return px[..., : 1 if px.shape[2] <= 2 else 3]


def check_output(src_image: Any, out: Path, fit: str | None, feather: int) -> list[dict[str, Any]]:
    """The declip output reads back, with the input's shape and dtype, and keeps the contract
    (unclipped values farther than ``feather`` pixels from a clipped pixel unchanged)."""
    import libdeclip
    from libdeclip.mask import clip_masks

    try:
        back = libdeclip.read_image(out)
    except libdeclip.DeclipError as exc:
        return [_bug("declip", "unreadable-output", type=type(exc).__name__, message=str(exc)[:500])]
    if src_image.raw is not None:
        return []
    a, b = src_image.pixels, back.pixels
    if a.shape != b.shape or (out.suffix.lower() in LOSSLESS and a.dtype != b.dtype):
        return [_bug("declip", "output-layout", type="Image",
                     message=f"in {a.shape} {a.dtype}, out {b.shape} {b.dtype}")]
    floaty = a.dtype.kind == "f" and fit in (None, "float")
    if out.suffix.lower() not in LOSSLESS or not (fit == "clamp" or floaty):
        return []
    low, high = src_image.clip_levels
    ca, cb = _colour(a), _colour(b)
    lo, hi = clip_masks(ca, low, high)
    keep = ~(hi | lo)
    if feather:
        from scipy.ndimage import maximum_filter

        near = maximum_filter((hi | lo).any(axis=2), size=2 * feather + 1, mode="constant", cval=False)
        keep = np.broadcast_to(~near[..., None], keep.shape)
    problems = []
    if not np.array_equal(cb[keep], ca[keep]):
        problems.append(f"{int((cb[keep] != ca[keep]).sum())} unclipped values changed")
    # clipped values move only outwards; clamp brings values beyond the clip levels back to them
    ref = np.clip(ca, low, high) if fit == "clamp" else ca
    if (cb[hi] < ref[hi]).any() or (cb[lo] > ref[lo]).any():
        problems.append("clipped values moved inwards")
    if b.dtype.kind == "f" and not np.isfinite(b).all():
        problems.append("NaN or infinite output")
    if problems:
        return [_bug("declip", "contract", type="values", message="; ".join(problems))]
    return []


def _option(options: list[str], name: str) -> str | None:
    return options[options.index(name) + 1] if name in options else None


def run_api(image: Any, options: list[str]) -> list[dict[str, Any]]:
    """``libdeclip.declip`` on the pixels as the command would call it: for a failed ``declip``,
    where the command shows a ValueError (numpy's LinAlgError is one) as a plain error line, to
    find exceptions that are not libdeclip's own."""
    import libdeclip

    if image.raw is not None:
        return []
    try:
        libdeclip.declip(image.pixels, method=_option(options, "--method") or "declipnet",
                         colorspace=image.icc_profile or image.colorspace, fit=_option(options, "--fit"),
                         feather=int(_option(options, "--feather") or 0), device="cpu")
    except libdeclip.DeclipError:
        return []
    except Exception as exc:
        return [_bug("api", "exception", type=type(exc).__name__, message=str(exc)[:500], **_where(exc))]
    return []


def run_declip(src: Path, image: Any, options: list[str], out_dir: Path) -> list[dict[str, Any]]:
    from libdeclip.io import IMAGE_SUFFIXES, is_raw_path

    if is_raw_path(src):
        suffix = ".tif" if "tiff32" in options or "tiff16" in options else ".dng"
    else:
        suffix = src.suffix.lower() if src.suffix.lower() in IMAGE_SUFFIXES else ".tif"
    out = out_dir / f"out{suffix}"
    results, rc = run_cli("declip", ["declip", str(src), "-o", str(out), "-q", *options], src)
    if rc is None:
        return results
    left = sorted(p.name for p in out_dir.iterdir() if p != out)
    if left:
        results.append(_bug("declip", "leftover-files", type="files", message=", ".join(left)[:300]))
    exists = out.exists()
    if rc == 0 and not exists:
        results.append(_bug("declip", "missing-output", type="files", message=str(out)))
    elif rc != 0 and exists:
        results.append(_bug("declip", "partial-output", type="files", message=results[0]["message"]))
    if rc != 0:
        results += run_api(image, options)
    elif rc == 0:
        fit = _option(options, "--fit")
        feather = int(_option(options, "--feather") or 0)
        try:
            results += check_output(image, out, fit, feather)
        except Exception as exc:  # the check itself failed: say so, as a note
            results.append(_note("declip", "checker-failed", type=type(exc).__name__, message=str(exc)[:300]))
    return results


def handle(req: dict[str, Any], log: Any) -> dict[str, Any]:
    path = Path(req["path"])
    out_dir = Path(req["out_dir"])
    for p in out_dir.iterdir():
        p.unlink()
    before = _digest(path)
    _reset_peak()
    base = _status_kb("VmRSS")
    start = time.perf_counter()
    faulthandler.dump_traceback_later(req["dump_after"], exit=False, file=log)
    try:
        results, image = run_read(path)
        info, _ = run_cli("info", ["info", str(path)], path)
        results += info
        if req.get("declip") is not None and image is not None:
            if image.pixels.shape[0] * image.pixels.shape[1] <= req["declip_max_pixels"]:
                options = list(req["declip"])
                if "biharmonic" in options and image.pixels.shape[0] * image.pixels.shape[1] > 64 * 64:
                    options[options.index("biharmonic")] = "inpaint-opposed"  # its solve: keep it quick
                results += run_declip(path, image, options, out_dir)
    finally:
        faulthandler.cancel_dump_traceback_later()
    if _digest(path) != before:
        results.append(_bug("input", "input-modified", type="file", message="the input file changed"))
    return {
        "id": req["id"],
        "results": results,
        "seconds": time.perf_counter() - start,
        "growth_kb": max(0, _status_kb("VmHWM") - base),
    }


def main() -> None:
    resp = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    log = open(sys.argv[2], "a", buffering=1)  # noqa: SIM115 - open for the process's life
    faulthandler.enable(file=log, all_threads=True)
    import warnings

    warnings.simplefilter("default")
    import libdeclip  # noqa: F401 - loaded before the first request, so it is not timed
    import libdeclip.cli  # noqa: F401

    resp.write(json.dumps({"ready": True, "pid": os.getpid(), "rss_kb": _status_kb("VmRSS")}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        print(f"--- request {req['id']}: {req['path']} {req.get('declip')}", file=log)
        resp.write(json.dumps(handle(req, log)) + "\n")


if __name__ == "__main__":
    main()
