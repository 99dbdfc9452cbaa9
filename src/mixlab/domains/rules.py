"""Declarative, ordered domain rules read from YAML.

A rules file lists domains, then rules in priority order (the first rule whose condition holds labels the
document), then a catch-all. Each rule has a ``name``, a ``domain``, a ``confidence`` and a condition
``when``. A condition is a mapping with exactly one of these keys:

``regex: PATTERN``
    holds when PATTERN (Python ``re``, MULTILINE) matches at least ``min_count`` times (default 1) with
    at least ``distinct`` different matched values (default 1; group 1 when the pattern has a group).
    ``ignore_case: true`` makes it case-insensitive.
``lines: PATTERN``
    looks at non-empty lines: holds when at least ``min_count`` lines (default 1) and at least
    ``min_fraction`` of them (default 0) match PATTERN (searched in each line).
``sequence: [PATTERN, ...]``
    holds when the patterns match one after another: each is searched from the end of the previous
    one's first match (linear time, unlike a ``[\\s\\S]*?`` between two patterns in one regex).
    ``ignore_case: true`` applies to all of them.
``min_chars: N`` / ``max_chars: N``
    document length bounds.
``all: [conditions]`` / ``any: [conditions]`` / ``not: condition``
    combinations.

A matched rule gives its domain probability ``confidence`` and spreads the rest evenly over the other
domains, so rules produce confidence-weighted one-hot probabilities.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mixlab.yamlconfig import safe_load

DEFAULT_RULES_NAME = "default_rules.yaml"


class RulesError(ValueError):
    """A rules file is malformed; the message names the file and line."""


# -- conditions -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """Base class of rule conditions."""

    def holds(self, text: str, lines: list[str]) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class RegexCond(Condition):
    pattern: re.Pattern[str]
    min_count: int = 1
    distinct: int = 1

    def holds(self, text: str, lines: list[str]) -> bool:
        if self.min_count <= 1 and self.distinct <= 1:
            return self.pattern.search(text) is not None
        seen: set[str] = set()
        for count, m in enumerate(self.pattern.finditer(text), 1):
            if self.distinct > 1:
                seen.add(m.group(1) if self.pattern.groups else m.group(0))
            if count >= self.min_count and (self.distinct <= 1 or len(seen) >= self.distinct):
                return True
        return False


@dataclass(frozen=True)
class LinesCond(Condition):
    pattern: re.Pattern[str]
    min_count: int = 1
    min_fraction: float = 0.0

    def holds(self, text: str, lines: list[str]) -> bool:
        if not lines:
            return False
        n = sum(1 for line in lines if self.pattern.search(line))
        return n >= self.min_count and n / len(lines) >= self.min_fraction


@dataclass(frozen=True)
class SequenceCond(Condition):
    patterns: tuple[re.Pattern[str], ...]

    def holds(self, text: str, lines: list[str]) -> bool:
        pos = 0
        for pattern in self.patterns:
            m = pattern.search(text, pos)
            if m is None:
                return False
            pos = m.end()
        return True


@dataclass(frozen=True)
class LengthCond(Condition):
    min_chars: int = 0
    max_chars: int | None = None

    def holds(self, text: str, lines: list[str]) -> bool:
        return len(text) >= self.min_chars and (self.max_chars is None or len(text) <= self.max_chars)


@dataclass(frozen=True)
class AllCond(Condition):
    parts: tuple[Condition, ...]

    def holds(self, text: str, lines: list[str]) -> bool:
        return all(c.holds(text, lines) for c in self.parts)


@dataclass(frozen=True)
class AnyCond(Condition):
    parts: tuple[Condition, ...]

    def holds(self, text: str, lines: list[str]) -> bool:
        return any(c.holds(text, lines) for c in self.parts)


@dataclass(frozen=True)
class NotCond(Condition):
    part: Condition

    def holds(self, text: str, lines: list[str]) -> bool:
        return not self.part.holds(text, lines)


# -- rules ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One named rule: when ``condition`` holds, the document belongs to ``domain`` with ``confidence``."""

    name: str
    domain: str
    confidence: float
    condition: Condition | None  # None for the catch-all
    line: int = 0


@dataclass
class RuleSet:
    """Ordered rules plus a catch-all over a fixed list of domains."""

    domains: list[str]
    rules: list[Rule]
    catch_all: Rule
    max_chars: int = 20_000
    source: str = "<rules>"
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {d: i for i, d in enumerate(self.domains)}

    def match(self, text: str) -> Rule:
        """The first rule whose condition holds for ``text`` (the catch-all when none does)."""
        head = text[: self.max_chars]
        lines = [ln for ln in head.splitlines() if ln.strip()]
        for rule in self.rules:
            assert rule.condition is not None
            if rule.condition.holds(head, lines):
                return rule
        return self.catch_all

    def rule_probs(self, rule: Rule) -> np.ndarray:
        """Confidence-weighted one-hot probabilities of a rule over ``domains``."""
        d = len(self.domains)
        p = np.full(d, (1.0 - rule.confidence) / (d - 1), dtype=np.float64)
        p[self._index[rule.domain]] = rule.confidence
        return p

    def apply(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray, list[str]]:
        """Label ``texts``: (domain labels, probabilities ``[n, len(domains)]`` float32, matched rule names)."""
        labels: list[str] = []
        names: list[str] = []
        probs = np.zeros((len(texts), len(self.domains)), dtype=np.float32)
        cache: dict[str, np.ndarray] = {}
        for i, text in enumerate(texts):
            rule = self.match(text)
            labels.append(rule.domain)
            names.append(rule.name)
            if rule.name not in cache:
                cache[rule.name] = self.rule_probs(rule)
            probs[i] = cache[rule.name]
        return labels, probs, names

    def confidences(self, rule_names: Sequence[str]) -> np.ndarray:
        """Confidence of each named rule (for rule names returned by :meth:`apply`)."""
        conf = {r.name: r.confidence for r in [*self.rules, self.catch_all]}
        return np.array([conf[n] for n in rule_names], dtype=np.float64)


# -- loading ----------------------------------------------------------------------------------------
_COND_KEYS = {"regex", "lines", "sequence", "min_chars", "max_chars", "all", "any", "not"}
_REGEX_OPTS = {"min_count", "distinct", "ignore_case"}
_LINES_OPTS = {"min_count", "min_fraction", "ignore_case"}


def default_rules_path() -> Path:
    """Path of the packaged default rules (``mixlab/domains/default_rules.yaml``)."""
    return Path(str(resources.files("mixlab.domains").joinpath(DEFAULT_RULES_NAME)))


def _compile(pattern: Any, ignore_case: bool, where: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise RulesError(f"{where}: pattern must be a string")
    try:
        return re.compile(pattern, re.MULTILINE | (re.IGNORECASE if ignore_case else 0))
    except re.error as exc:
        raise RulesError(f"{where}: invalid regex {pattern!r}: {exc}") from exc


def _int(value: Any, where: str, key: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RulesError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _parse_condition(obj: Any, where: str) -> Condition:
    if not isinstance(obj, dict):
        raise RulesError(f"{where}: a condition must be a mapping, got {type(obj).__name__}")
    kinds = [k for k in obj if k in _COND_KEYS]
    if len(kinds) == 2 and set(kinds) == {"min_chars", "max_chars"} and len(obj) == 2:
        return LengthCond(
            _int(obj["min_chars"], where, "min_chars"), _int(obj["max_chars"], where, "max_chars")
        )
    if len(kinds) != 1:
        raise RulesError(f"{where}: a condition needs exactly one of {sorted(_COND_KEYS)}, got {sorted(obj)}")
    kind = kinds[0]
    opts = {k: v for k, v in obj.items() if k != kind}
    if kind in ("regex", "lines"):
        allowed = _REGEX_OPTS if kind == "regex" else _LINES_OPTS
        unknown = set(opts) - allowed
        if unknown:
            raise RulesError(
                f"{where}: unknown option(s) {sorted(unknown)} for {kind!r} (allowed: {sorted(allowed)})"
            )
        pat = _compile(obj[kind], bool(opts.get("ignore_case", False)), where)
        min_count = _int(opts.get("min_count", 1), where, "min_count", 1)
        if kind == "regex":
            return RegexCond(pat, min_count, _int(opts.get("distinct", 1), where, "distinct", 1))
        frac = opts.get("min_fraction", 0.0)
        if not isinstance(frac, int | float) or not 0 <= frac <= 1:
            raise RulesError(f"{where}: min_fraction must be a number in [0, 1], got {frac!r}")
        return LinesCond(pat, min_count, float(frac))
    if kind == "sequence":
        unknown = set(opts) - {"ignore_case"}
        if unknown:
            raise RulesError(
                f"{where}: unknown option(s) {sorted(unknown)} for 'sequence' (allowed: ['ignore_case'])"
            )
        items = obj[kind]
        if not isinstance(items, list) or not items:
            raise RulesError(f"{where}: 'sequence' needs a non-empty list of patterns")
        ignore = bool(opts.get("ignore_case", False))
        return SequenceCond(tuple(_compile(p, ignore, f"{where}.sequence[{i}]") for i, p in enumerate(items)))
    if opts:
        raise RulesError(f"{where}: {kind!r} takes no options, got {sorted(opts)}")
    if kind == "min_chars":
        return LengthCond(min_chars=_int(obj[kind], where, kind))
    if kind == "max_chars":
        return LengthCond(max_chars=_int(obj[kind], where, kind))
    if kind == "not":
        return NotCond(_parse_condition(obj[kind], f"{where}.not"))
    items = obj[kind]
    if not isinstance(items, list) or not items:
        raise RulesError(f"{where}: {kind!r} needs a non-empty list of conditions")
    parts = tuple(_parse_condition(c, f"{where}.{kind}[{i}]") for i, c in enumerate(items))
    return AllCond(parts) if kind == "all" else AnyCond(parts)


def _rule_lines(text: str) -> tuple[int, list[int], int]:
    """Line numbers (1-based) of the document, of each item of ``rules`` and of ``catch_all``."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    rule_lines: list[int] = []
    catch_line = 0
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "rules" and isinstance(value, yaml.SequenceNode):
                rule_lines = [item.start_mark.line + 1 for item in value.value]
            elif key.value == "catch_all":
                catch_line = value.start_mark.line + 1
    return (node.start_mark.line + 1 if node is not None else 1), rule_lines, catch_line


def _parse_rule(obj: Any, domains: list[str], where: str, line: int, catch_all: bool = False) -> Rule:
    if not isinstance(obj, dict):
        raise RulesError(f"{where}: a rule must be a mapping")
    required = {"name", "domain", "confidence"} | (set() if catch_all else {"when"})
    allowed = required | {"description"}
    missing, unknown = required - set(obj), set(obj) - allowed
    if missing:
        raise RulesError(f"{where}: missing key(s) {sorted(missing)}")
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: {sorted(allowed)})")
    name = obj["name"]
    if not isinstance(name, str) or not name:
        raise RulesError(f"{where}: name must be a non-empty string")
    where = f"{where} ({name})"
    if obj["domain"] not in domains:
        raise RulesError(f"{where}: domain {obj['domain']!r} is not one of {domains}")
    conf = obj["confidence"]
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 < conf <= 1:
        raise RulesError(f"{where}: confidence must be a number in (0, 1], got {conf!r}")
    cond = None if catch_all else _parse_condition(obj["when"], f"{where}: when")
    return Rule(name=name, domain=obj["domain"], confidence=float(conf), condition=cond, line=line)


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Parse rules YAML ``text``; errors name ``source`` and the line of the offending rule."""
    try:
        data = safe_load(text)
        top_line, rule_lines, catch_line = _rule_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RulesError(f"{source}{line}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RulesError(f"{source}:1: a rules file must be a mapping with domains, rules and catch_all")
    unknown = set(data) - {"domains", "rules", "catch_all", "max_chars", "description"}
    if unknown:
        raise RulesError(f"{source}:{top_line}: unknown top-level key(s) {sorted(unknown)}")
    domains = data.get("domains")
    if not isinstance(domains, list) or len(domains) < 2 or not all(isinstance(d, str) for d in domains):
        raise RulesError(f"{source}:{top_line}: 'domains' must list at least two domain names")
    if len(set(domains)) != len(domains):
        raise RulesError(f"{source}:{top_line}: 'domains' has duplicates")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list):
        raise RulesError(f"{source}:{top_line}: 'rules' must be a list")
    rules: list[Rule] = []
    names: set[str] = set()
    for i, obj in enumerate(raw_rules):
        line = rule_lines[i] if i < len(rule_lines) else top_line
        rule = _parse_rule(obj, domains, f"{source}:{line}: rule #{i + 1}", line)
        if rule.name in names:
            raise RulesError(f"{source}:{line}: duplicate rule name {rule.name!r}")
        names.add(rule.name)
        rules.append(rule)
    if "catch_all" not in data:
        raise RulesError(f"{source}:{top_line}: missing 'catch_all' (the rule for documents no rule matches)")
    catch = _parse_rule(
        data["catch_all"], domains, f"{source}:{catch_line}: catch_all", catch_line, catch_all=True
    )
    max_chars = _int(data.get("max_chars", 20_000), f"{source}:{top_line}", "max_chars", 100)
    return RuleSet(domains=list(domains), rules=rules, catch_all=catch, max_chars=max_chars, source=source)


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Load a rules YAML file (``None``: the packaged default rules)."""
    p = Path(path) if path is not None else default_rules_path()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: rules file not found")
    return parse_rules(p.read_text(encoding="utf-8"), source=str(p))
