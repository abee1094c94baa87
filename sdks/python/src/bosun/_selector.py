"""Kubernetes label selectors, for the native harness's ``list``.

The host parses selectors with its own parser (crate ``bosun-selector``);
this one accepts the same syntax so a test sees the objects the host
would return: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``,
``a`` and ``!a``, joined by commas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"


class SelectorError(ValueError):
    """A selector that does not parse; the text is what the host would say."""


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Callable[[dict[str, str]], bool], ...]

    def matches(self, labels: dict[str, str]) -> bool:
        return all(r(labels) for r in self.requirements)


def parse(text: str) -> Selector:
    """Parses ``text``; an empty selector matches everything."""
    requirements = []
    for term in _split(text):
        requirements.append(_requirement(term))
    return Selector(tuple(requirements))


def _split(text: str) -> list[str]:
    # Commas inside `in (...)` lists do not separate requirements.
    terms, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    if depth != 0:
        raise SelectorError(f"unbalanced parentheses in selector {text!r}")
    terms.append(current)
    stripped = [t.strip() for t in terms]
    if stripped == [""]:
        return []
    if any(t == "" for t in stripped):
        raise SelectorError(f"empty requirement in selector {text!r}")
    return stripped


def _requirement(term: str) -> Callable[[dict[str, str]], bool]:
    if m := re.fullmatch(rf"!\s*({_KEY})", term):
        key = m.group(1)
        return lambda labels: key not in labels
    if m := re.fullmatch(rf"({_KEY})\s+(in|notin)\s+\(([^()]*)\)", term):
        key, op = m.group(1), m.group(3)
        values = {v.strip() for v in m.group(4).split(",")}
        for v in values:
            _value(v, term)
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := re.fullmatch(rf"({_KEY})\s*(==|!=|=)\s*(.*)", term):
        key, op, value = m.group(1), m.group(3), _value(m.group(4).strip(), term)
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := re.fullmatch(_KEY, term):
        key = m.group(0)
        return lambda labels: key in labels
    raise SelectorError(f"cannot parse label selector requirement {term!r}")


def _value(value: str, term: str) -> str:
    if len(value) > 63 or not re.fullmatch(_VALUE, value):
        raise SelectorError(f"invalid label value {value!r} in {term!r}")
    return value
