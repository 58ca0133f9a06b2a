"""The shape shared by heuristic filters: measure a document, judge the measures, explain.

A subclass says which values it measures (`measure`) and which rule the values break first
(`judge`). This base runs them over a batch, writes `drop_reason` as `<type>:<rule>` (for example
`gopher_quality:alpha_words<0.8`) and, for removed rows only, `drop_detail` with the value that broke
the rule (`alpha_words=0.62 < 0.8`), counts each rule, and bins every measured value into stats.json.
Documents in a language the filter has no rules for pass, and are counted as such.
"""
from __future__ import annotations

import math
import operator
import re
from collections import defaultdict
from typing import ClassVar

import pyarrow as pa

from crawl2model.pipeline.stage import DROP_DETAIL, DROP_REASON, Stage, StageConfig

RATIO_EDGES = [i / 20 for i in range(21)]  # 0, 0.05, ..., 1
COUNT_EDGES = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 100_000, 1_000_000]
COMPARISON = re.compile(r"^(\w+)(<|>)(\S+)$")  # a rule that compares a measure with a threshold: `alpha_words<0.8`
_HOLDS = {"<": operator.lt, ">": operator.gt}


def fmt(threshold: float) -> str:
    """A threshold as written in a reason: 50, 0.8 (not 50.0)."""
    return str(int(threshold)) if float(threshold).is_integer() else str(threshold)


def below(measures: dict, name: str, threshold: float | None) -> str | None:
    value = measures.get(name, math.nan)
    return f"{name}<{fmt(threshold)}" if threshold is not None and value < threshold else None


def above(measures: dict, name: str, threshold: float | None) -> str | None:
    value = measures.get(name, math.nan)
    return f"{name}>{fmt(threshold)}" if threshold is not None and value > threshold else None


def split_rule(rule: str) -> tuple[str, str, str] | None:
    """(measure, comparison, threshold as written) of a rule like `alpha_words<0.8`; None for a rule
    that compares nothing (`empty`, `lorem_ipsum`)."""
    match = COMPARISON.match(rule)
    return match.groups() if match else None


def rounded(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant digits, readably: an integer as it is, 12346 rather than 1.23e+04."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}"


def readable(value: float, op: str, threshold: float) -> str:
    """`value` to 3 significant digits, with more where rounding would hide why the rule fired:
    0.79996 < 0.8 is shown as 0.79996, never as 0.8."""
    for digits in range(3, 18):
        shown = rounded(value, digits)
        if _HOLDS[op](float(shown), threshold):
            return shown
    return repr(value)


def detail(name: str, value: float, op: str, threshold: str) -> str:
    """A removed row's drop_detail: the measured value, the comparison, the threshold (`alpha_words=0.62 < 0.8`)."""
    try:
        return f"{name}={readable(value, op, float(threshold))} {op} {threshold}"
    except ValueError:  # a threshold that is no number
        return f"{name}={value} {op} {threshold}"


def rule_detail(rule: str, measures: dict[str, float]) -> str | None:
    """drop_detail for a rule named like `alpha_words<0.8`, from the measure it names."""
    parts = split_rule(rule)
    if parts is None or parts[0] not in measures:
        return None
    name, op, threshold = parts
    return detail(name, measures[name], op, threshold)


class FilterConfig(StageConfig):
    language: str = "en"  # assumed when the input has no `language` column (no langid stage before)


class DocumentFilter(Stage):
    Config: ClassVar[type[FilterConfig]] = FilterConfig
    edges: ClassVar[dict[str, list[float]]] = {}  # histogram bins per measured value (default: ratios)

    def applies_to(self, language: str) -> bool:
        return True

    def measure(self, text: str, language: str) -> dict[str, float]:
        raise NotImplementedError

    def judge(self, measures: dict[str, float]) -> str | None:
        """The first rule the measures break, named with its threshold (`alpha_words<0.8`), or None."""
        raise NotImplementedError

    def explain(self, rule: str, measures: dict[str, float]) -> str | None:
        """drop_detail of a document `rule` removed: by default the value of the measure the rule
        names against its threshold; None for a rule without one (`empty`)."""
        return rule_detail(rule, measures)

    def process(self, batch: pa.Table) -> pa.Table:
        batch = valid_text(batch)
        texts = batch.column("text").to_pylist()
        reasons, details, measured = [], [], defaultdict(list)
        for text, language in zip(texts, document_languages(batch, self.config.language)):
            if not self.applies_to(language):
                self.counters[f"passed:no_rules_for:{language}"] += 1
                reasons.append(None)
                details.append(None)
                continue
            measures = self.measure(text or "", language)
            for name, value in measures.items():
                measured[name].append(value)
            rule = self.judge(measures)
            if rule:
                self.counters[f"rule:{rule}"] += 1
            reasons.append(f"{self.type_name}:{rule}" if rule else None)
            details.append(self.explain(rule, measures) if rule else None)  # built for removed rows only
        for name, values in measured.items():
            self.observe(name, values, self.edges.get(name, RATIO_EDGES))
        return (batch.append_column(DROP_REASON, pa.array(reasons, pa.string()))
                .append_column(DROP_DETAIL, pa.array(details, pa.string())))


def valid_text(batch: pa.Table) -> pa.Table:
    """The batch with invalid UTF-8 in `text` (lone surrogates from a careless writer) replaced by
    U+FFFD, so reading the column cannot raise."""
    column = batch.column("text")
    try:
        column.validate(full=True)
        return batch
    except pa.ArrowInvalid:
        raw = column.cast(pa.binary()) if column.type == pa.string() else column.cast(pa.large_binary())
        fixed = [None if b is None else b.decode("utf-8", errors="replace") for b in raw.to_pylist()]
        return batch.set_column(batch.column_names.index("text"), "text", pa.array(fixed, column.type))


def document_languages(batch: pa.Table, default: str) -> list[str]:
    """Each document's language: the `language` column (set by langid) where it has one, else `default`."""
    if "language" not in batch.column_names:
        return [default] * batch.num_rows
    return [language or default for language in batch.column("language").to_pylist()]
