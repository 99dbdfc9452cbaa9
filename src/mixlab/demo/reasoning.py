"""Reasoning domain: one-step word problems over small numbers with worked answers.

Skill taught: reading ``has a ... gets b more`` / ``gives away b`` and producing ``a + b`` or ``a - b``.
Task: the problem alone; choices are the result and near misses (the other operation, off by one or two).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from mixlab.demo import lexicon as lx
from mixlab.demo.entities import Entities

_ADD = (
    "{p} has {a} {o}. {p} gets {b} more {o}. How many {o} does {p} have now?",
    "{p} had {a} {o} and found {b} more. How many {o} does {p} have in total?",
    "There are {a} {o} in a box. {p} puts in {b} more. How many {o} are in the box?",
)
_SUB = (
    "{p} has {a} {o}. {p} gives {b} {o} to a friend. How many {o} does {p} have left?",
    "{p} had {a} {o} and lost {b}. How many {o} are left?",
    "There are {a} {o} in a box. {p} takes out {b}. How many {o} are in the box now?",
)


@dataclass(frozen=True)
class Problem:
    """A one-step arithmetic word problem."""

    text: str
    a: int
    b: int
    op: str  # "+" | "-"

    @property
    def answer(self) -> int:
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def wrong_op(self) -> int:
        return self.a - self.b if self.op == "+" else self.a + self.b


def draw_problem(rng: random.Random) -> Problem:
    """Draw a problem with operands 1..9 (subtraction never goes below zero)."""
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    op = rng.choice("+-")
    if op == "-" and b > a:
        a, b = b, a
    tpl = rng.choice(_ADD if op == "+" else _SUB)
    text = tpl.format(p=rng.choice(lx.PEOPLE), o=rng.choice(lx.COUNT_OBJECTS), a=a, b=b)
    return Problem(text, a, b, op)


def _render(rng: random.Random, pr: Problem) -> str:
    eq = f"{pr.a} {pr.op} {pr.b} = {pr.answer}"
    form = rng.randrange(4)
    if form == 0:
        return f"Q: {pr.text}\nA: {pr.answer}. ({eq})"
    if form == 1:
        return f"Problem: {pr.text}\nAnswer: {pr.answer}\nWorking: we compute {eq}."
    if form == 2:
        return f"{pr.text} The answer is {pr.answer}, because {eq}."
    return f"Question: {pr.text}\nAnswer: {pr.answer}"


def make_doc(rng: random.Random, ent: Entities, reserved: set[str]) -> str:
    """A worksheet of 2-4 solved problems (none of them a held-out task question)."""
    parts = [rng.choice(("Practice sheet.", "Worked examples:", "Homework answers", "Maths drill"))]
    for _ in range(rng.randint(2, 4)):
        pr = draw_problem(rng)
        while pr.text in reserved:
            pr = draw_problem(rng)
        parts.append(_render(rng, pr))
    return "\n\n".join(parts)


def make_item(rng: random.Random, ent: Entities) -> tuple[str, dict[str, Any]]:
    """A held-out task item with the result and three near misses as distractors."""
    pr = draw_problem(rng)
    ans = pr.answer
    pool = sorted(v for v in {pr.wrong_op, ans - 2, ans - 1, ans + 1, ans + 2} if v >= 0 and v != ans)
    if len(pool) < 3:
        pool.append(ans + 3)
    distractors = [str(v) for v in rng.sample(pool, 3)]
    return pr.text, {"question": pr.text, "correct": str(ans), "distractors": distractors}
