"""Regenerate BENCHMARKS.md from the result files in benchmarks/results and a template of fixed prose.

    python -m benchmarks.build_md [--template benchmarks/BENCHMARKS.template.md]
                                  [--results benchmarks/results] [--out BENCHMARKS.md]
                                  [--record-machine] [--check]

The template is markdown; a line holding only one of these directives is replaced:

- ``{{machine}}``: the machine the benchmarks ran on, as ``--record-machine`` wrote it into
  ``machine.md`` in the results folder (``make bench`` does that first), else this machine's.
- ``{{results FILE | COMMAND}}``: the result file, verbatim (its headings moved below the template's
  current heading, its relative links made relative to the output), after one line that says the
  command that produced it and the machine: the file's own ``Machine: ...; command: `...` `` line
  where it has one (the line itself is then left out), else the file's ``command: `...` `` or
  ``Made by `...` `` and the recorded machine, else COMMAND and the recorded machine.
  ``FILE#Heading`` takes only the part under the heading that starts with "Heading" (down to the
  next heading of its level or above), with its own source line where it differs from the last.
  A missing file is reported as not measured, with the command that writes it.
- ``{{text FILE | COMMAND}}``: a plain-text result (a program's printout) as a code block.
- ``{{images GLOB ...}}``: every image of the results folder matching a pattern that the page does
  not show yet.

``--check`` lists the decimal figures the prose of a section quotes that its results no longer
contain (prose written against older results), without failing.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "benchmarks" / "BENCHMARKS.template.md"
RESULTS = REPO / "benchmarks" / "results"
MACHINE_FILE = "machine.md"

_DIRECTIVE = re.compile(r"^\{\{\s*(machine|results|text|images)\b\s*(.*?)\s*\}\}\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_OWN_SOURCE = re.compile(r"Machine:\s*(?P<machine>[^\n]*?);\s*command:\s*`(?P<command>[^`]+)`\.?")
_COMMAND = re.compile(r"(?:command:|made by)\s*`(?P<command>[^`]+)`", re.I)
_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
_FIGURE = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")


@dataclass
class _Page:
    results: Path
    out_dir: Path
    machine: str
    lines: list[str] = field(default_factory=list)
    level: int = 1  # the template's current heading level
    sourced: dict[str, str] = field(default_factory=dict)  # file: the last source line given
    prose: list[tuple[str, str]] = field(default_factory=list)  # (section, template line)
    section: str = ""

    def link(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.out_dir)).as_posix()


def recorded_machine(results: Path) -> str:
    path = results / MACHINE_FILE
    if path.is_file():
        return path.read_text().strip()
    from benchmarks import _machine

    return f"{_machine.describe()} (not recorded by `make bench`: the machine that built this page)"


def record_machine(results: Path) -> Path:
    from benchmarks import _machine

    results.mkdir(parents=True, exist_ok=True)
    path = results / MACHINE_FILE
    path.write_text(f"{_machine.describe()}; recorded {datetime.date.today().isoformat()}\n")
    return path


def _split(argument: str) -> tuple[str, str]:
    name, _, command = argument.partition("|")
    return name.strip(), command.strip()


def _section(text: str, heading: str) -> str | None:
    """The part of ``text`` under the first heading starting with ``heading``, down to the next
    heading of the same level or above."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _HEADING.match(line)
        if m and m.group(2).strip().lower().startswith(heading.lower()):
            level = len(m.group(1))
            end = next((j for j in range(i + 1, len(lines))
                        if (n := _HEADING.match(lines[j])) and len(n.group(1)) <= level), len(lines))
            return "\n".join(lines[i:end])
    return None


def _shift_headings(text: str, below: int) -> str:
    """Move the headings of ``text`` so that its highest becomes level ``below + 1``."""
    levels = [len(m.group(1)) for line in text.splitlines() if (m := _HEADING.match(line))]
    if not levels:
        return text
    shift = below + 1 - min(levels)
    out = []
    for line in text.splitlines():
        m = _HEADING.match(line)
        out.append("#" * min(6, max(1, len(m.group(1)) + shift)) + " " + m.group(2) if m else line)
    return "\n".join(out)


def _relink(text: str, page: _Page) -> str:
    def fix(m: re.Match[str]) -> str:
        target = m.group(2)
        if re.match(r"^([a-z]+:|/|#)", target):
            return m.group(0)
        return m.group(1) + page.link(page.results / target) + m.group(3)

    return _LINK.sub(fix, text)


def _source_line(page: _Page, name: str, text: str | None, command: str) -> str:
    where = page.link(page.results / name)
    if text is None:
        return f"*Not measured yet: `{where}` is missing; `{command}` writes it.*"
    machine = page.machine
    if own := _OWN_SOURCE.search(text):
        machine, command = own.group("machine"), own.group("command")
    elif m := _COMMAND.search(text):
        command = m.group("command")
    return f"*Command: `{command}` (results in `{where}`); machine: {machine}.*"


def _results(page: _Page, argument: str, plain: bool) -> list[str]:
    spec, command = _split(argument)
    name, _, heading = spec.partition("#")
    path = page.results / name
    text = path.read_text().strip() if path.is_file() else None
    if text is not None and heading:
        part = _section(text, heading)
        if part is None:
            return [f"*`{name}` has no part \"{heading}\": rerun `{command}`.*"]
        text = part
    out: list[str] = []
    source = _source_line(page, name, text, command)
    if page.sourced.get(name) != source:  # once per file, unless its parts differ
        page.sourced[name] = source
        out += [source, ""]
    if text is None:
        return out
    if plain:
        return out + ["```", text, "```"]
    # A line that only names the machine and command is said by the source line already.
    text = "\n".join(line for line in text.splitlines() if not _OWN_SOURCE.fullmatch(line.strip()))
    return out + [_relink(_shift_headings(text, page.level), page)]


def _images(page: _Page, argument: str) -> list[str]:
    shown = "\n".join(page.lines)
    out = []
    for pattern in argument.split():
        for path in sorted(page.results.glob(pattern)):
            link = page.link(path)
            if link not in shown and path.name not in shown:
                alt = path.stem.replace("_", " ")
                out += [f"![{alt}]({link})", ""]
                shown += link
    return out[:-1]


def build(template: Path = TEMPLATE, results: Path = RESULTS, out: Path = REPO / "BENCHMARKS.md",
          machine: str | None = None) -> tuple[str, list[str]]:
    """The page ``out`` made from ``template`` and the files in ``results``, and the figures its
    prose quotes that the results of its section lack. ``machine``: default the recorded one."""
    page = _Page(results=results, out_dir=out.parent,
                 machine=machine if machine is not None else recorded_machine(results))
    generated: dict[str, list[str]] = {}
    in_comment = False
    for line in template.read_text().splitlines():
        if in_comment or line.lstrip().startswith("<!--"):  # notes for the template's editors
            in_comment = "-->" not in line
            continue
        m = _DIRECTIVE.match(line)
        if not m:
            if h := _HEADING.match(line):
                page.level = len(h.group(1))
                if page.level <= 2:
                    page.section = h.group(2).strip()
            else:
                page.prose.append((page.section, line))
            page.lines.append(line)
            continue
        kind, argument = m.groups()
        if kind == "machine":
            new = [f"Measured on: {page.machine}."]
        elif kind == "images":
            new = _images(page, argument)
        else:
            new = _results(page, argument, plain=kind == "text")
        generated.setdefault(page.section, []).extend(new)
        page.lines.extend(new)
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(page.lines)).strip() + "\n"
    stale = []
    for section, line in page.prose:
        results_text = "\n".join(generated.get(section, []))
        for figure in _FIGURE.findall(line):
            if not re.search(rf"(?<![\w.]){re.escape(figure)}(?![\w.])", results_text):
                stale.append(f"{section or '(top)'}: {figure} in \"{line.strip()[:80]}\"")
    notice = (
        "<!-- Generated by `python -m benchmarks.build_md` (the last step of `make bench`) from "
        f"{page.link(template)} and the files in "
        f"{page.link(results)}/: edit those, not this file. -->\n"
    )
    return notice + text, stale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.build_md", description=__doc__.splitlines()[0])
    p.add_argument("--template", type=Path, default=TEMPLATE)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    p.add_argument("--record-machine", action="store_true",
                   help=f"only write this machine's description into RESULTS/{MACHINE_FILE}")
    p.add_argument("--check", action="store_true",
                   help="list figures the prose quotes that its section's results lack")
    args = p.parse_args(argv)
    if args.record_machine:
        print(f"wrote {record_machine(args.results)}")
        return 0
    if not args.template.is_file():
        print(f"error: template {args.template} not found", file=sys.stderr)
        return 2
    text, stale = build(args.template, args.results, args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    if args.check:
        for entry in stale:
            print(f"prose figure not in the results: {entry}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
