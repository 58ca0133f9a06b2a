"""A `RunDiff` as lines of text: what `pipeline diff` prints without `--json`."""
from __future__ import annotations

from typing import Any

from crawl2model.diff.compare import Counts, RunDiff, StageDiff
from crawl2model.pipeline.records import FileInfo

FILES_SHOWN = 10  # differing files listed per stage in the text; the JSON has them all


def render(diff: RunDiff) -> list[str]:
    """The comparison as lines: one summary line per stage, then the details of those that differ."""
    lines = [f"A: {diff.run_a}", f"B: {diff.run_b}"]
    lines += [f"package {c.key}: {c.a} -> {c.b}" for c in diff.packages]
    width = max((len(s.stage) for s in diff.stages), default=0)
    lines += [f"{s.stage:<{width}}  {_summary(s)}" for s in diff.stages]
    for stage in diff.stages:
        if not stage.identical:
            lines += ["", *_details(stage)]
    lines += ["", "identical" if diff.identical else
              f"{sum(not s.identical for s in diff.stages)} of {len(diff.stages)} stages differ"]
    return lines


def _summary(stage: StageDiff) -> str:
    if stage.status_a is None or stage.status_b is None:
        return f"only in {'B' if stage.status_a is None else 'A'}"
    if stage.identical:
        return "identical"
    what = []
    if stage.status_a != stage.status_b:
        what.append(f"status {stage.status_a} -> {stage.status_b}")
    if stage.fingerprint_a != stage.fingerprint_b:
        keys = [c.key for c in stage.why]
        what.append(f"fingerprint ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})" if keys else "fingerprint")
    a, b = stage.counts_a or Counts(), stage.counts_b or Counts()
    for label, key in (("docs in", "docs_in"), ("kept", "docs_out")):
        if getattr(a, key) != getattr(b, key):
            what.append(f"{label} {_n(getattr(a, key))} -> {_n(getattr(b, key))}")
    if a.removed_by_reason != b.removed_by_reason and a.docs_out == b.docs_out:
        what.append("removal reasons")
    if stage.files:
        what.append(f"{len(stage.files)} file{'s' if len(stage.files) > 1 else ''}")
    return "differs: " + "; ".join(what)


def _details(stage: StageDiff) -> list[str]:
    lines = [f"{stage.stage}:"]
    if stage.fingerprint_a != stage.fingerprint_b:
        lines.append(f"  fingerprint {stage.fingerprint_a} -> {stage.fingerprint_b}, because:")
        lines += [f"    {c.key}" + ("" if c.a is None and c.b is None else f": {_v(c.a)} -> {_v(c.b)}")
                  for c in stage.why]
    a, b = stage.counts_a or Counts(), stage.counts_b or Counts()
    lines.append(f"  docs in {_n(a.docs_in)} -> {_n(b.docs_in)}, kept {_n(a.docs_out)} -> {_n(b.docs_out)}")
    for reason in sorted(a.removed_by_reason.keys() | b.removed_by_reason.keys()):
        count_a, count_b = a.removed_by_reason.get(reason, 0), b.removed_by_reason.get(reason, 0)
        lines.append(f"    removed {reason}: {count_a:,} -> {count_b:,}" + ("" if count_a != count_b else " (same)"))
    for change in stage.files[:FILES_SHOWN]:
        columns = "" if change.columns is None else f" (columns: {', '.join(change.columns) or 'footers agree'})"
        lines.append(f"  file {change.path}: {_file(change.a)} -> {_file(change.b)}{columns}")
    if len(stage.files) > FILES_SHOWN:
        lines.append(f"  ... and {len(stage.files) - FILES_SHOWN:,} more files (--json lists them all)")
    docs = stage.documents
    if docs is not None:
        lines.append(f"  kept in A, removed in B: {docs.removed_in_b:,}; "
                     f"kept in B, removed in A: {docs.removed_in_a:,}")
        for label, shown in (("removed in B", docs.examples_removed_in_b),
                             ("removed in A", docs.examples_removed_in_a)):
            lines += [f"    {label}: {d.id} {d.url or ''}  {d.drop_reason}"
                      + (f" ({d.drop_detail})" if d.drop_detail else "") for d in shown]
        if docs.absent_in_b or docs.absent_in_a:
            lines.append(f"  kept in A, not in B's input: {docs.absent_in_b:,}; kept in B, not in A's input: "
                         f"{docs.absent_in_a:,}")
    return lines


def _file(info: FileInfo | None) -> str:
    if info is None:
        return "(none)"
    return f"{info.bytes:,} bytes" + (f" sha256 {info.sha256[:12]}" if info.sha256 else "")


def _v(value: Any) -> str:
    return "(unset)" if value is None else repr(value) if isinstance(value, str) else str(value)


def _n(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"
