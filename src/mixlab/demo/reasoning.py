"""Reasoning domain: one-step word problems solved by counting on or back, with worked answers.

Skill taught: the counting procedure. ``Mira has 7 apples. Mira gets 3 more.`` is answered ``8 9 10`` (count on
from 7, three times); ``... gives 3 away`` is answered ``6 5 4``. Worksheets show many such solutions plus
counting drills. Task: the problem alone; every choice is a run of the same length over the same numbers' range:
- the count in the wrong direction (``6 5 4`` for an addition): a valid count, ruled out only by reading
  whether the problem adds or takes away;
- the count with a skipped number (``8 10 11``) and with a repeated one (``8 8 9``): not counts at all, ruled
  out by knowing how counting goes.
A tiny proxy learns which number follows which in a count long before it learns to read the operation, so at
the demo's scale the domain lifts accuracy from chance to about one half. General prose holds no numbers.
"""

from __future__ import annotations

import random
import re
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
#: Smallest starting count: counting back ``b`` (at most 4) from it never goes below 1.
MIN_START = 5
MAX_START = 20
MAX_STEPS = 4


@dataclass(frozen=True)
class Problem:
    """A one-step word problem: start at ``a`` and count ``b`` steps up (``+``) or down (``-``)."""

    text: str
    a: int
    b: int
    op: str  # "+" | "-"

    @property
    def step(self) -> int:
        return 1 if self.op == "+" else -1

    @property
    def answer(self) -> int:
        return self.a + self.step * self.b

    def count(self, step: int | None = None) -> list[int]:
        """The numbers said while counting from ``a``, one ``step`` at a time, ``b`` times."""
        s = self.step if step is None else step
        return [self.a + s * (i + 1) for i in range(self.b)]


def template_key(text: str) -> str:
    """A problem with its numbers masked: a task item reserves every problem that differs from it only in
    its numbers (they share 13-word runs, which decontamination would flag)."""
    return re.sub(r"\d+", "#", text)


def say(numbers: list[int]) -> str:
    """A count as written in the answers: numbers separated by single spaces."""
    return " ".join(str(n) for n in numbers)


def draw_problem(rng: random.Random) -> Problem:
    """Draw a problem: start 5..20, 2..4 steps, addition or subtraction."""
    a, b = rng.randint(MIN_START, MAX_START), rng.randint(2, MAX_STEPS)
    op = rng.choice("+-")
    tpl = rng.choice(_ADD if op == "+" else _SUB)
    text = tpl.format(p=rng.choice(lx.PEOPLE), o=rng.choice(lx.COUNT_OBJECTS), a=a, b=b)
    return Problem(text, a, b, op)


def _solution(rng: random.Random, pr: Problem) -> str:
    counted = say(pr.count())
    form = rng.randrange(4)
    if form == 0:
        return f"Question: {pr.text}\nAnswer: {counted}"
    if form == 1:
        way = "on" if pr.op == "+" else "back"
        return f"{pr.text} Count {way} from {pr.a}: {counted}. The answer is {pr.answer}."
    if form == 2:
        return f"Problem: {pr.text}\nAnswer: {counted}"
    return f"Q: {pr.text}\nA: {counted}"


def _drill(rng: random.Random) -> str:
    n = rng.randint(3, 6)
    if rng.random() < 0.5:
        a = rng.randint(1, MAX_START + 4)
        return f"Count up from {a}: {say([a + i + 1 for i in range(n)])}"
    a = rng.randint(n + 1, MAX_START + 4)
    return f"Count down from {a}: {say([a - i - 1 for i in range(n)])}"


def make_doc(rng: random.Random, ent: Entities, reserved: set[str]) -> str:
    """A worksheet of 3-5 solved problems and counting drills (no held-out task question)."""
    parts = [rng.choice(("Practice sheet.", "Worked examples:", "Homework answers", "Counting practice"))]
    for _ in range(rng.randint(3, 5)):
        if rng.random() < 0.2:
            parts.append(_drill(rng))
            continue
        pr = draw_problem(rng)
        while template_key(pr.text) in reserved:
            pr = draw_problem(rng)
        parts.append(_solution(rng, pr))
    return "\n\n".join(parts)


def make_item(rng: random.Random, ent: Entities) -> tuple[str, dict[str, Any]]:
    """A held-out item: the count vs the count the other way, one with a skip and one with a repeat."""
    pr = draw_problem(rng)
    right = pr.count()
    skip_at, repeat_at = rng.randrange(1, pr.b), rng.randrange(1, pr.b)
    skipped = right[:skip_at] + [n + pr.step for n in right[skip_at:]]
    repeated = right[:repeat_at] + [n - pr.step for n in right[repeat_at:]]
    distractors = [say(pr.count(-pr.step)), say(skipped), say(repeated)]
    return template_key(pr.text), {
        "question": pr.text,
        "correct": say(right),
        "distractors": distractors,
        "kinds": ["wrong_direction", "skip", "repeat"],
    }
