"""Function-calling domain: API docs and request -> call examples for the twenty fixed functions.

Skill taught: which argument keys each function takes and which value goes to which key. Task: the function
name, its description and a request; choices are calls with the right keys vs other functions' keys, one
wrong key, or the right keys in the wrong slots. Every choice carries the same values in the same order, so
only the keys differ (same format, similar length). The question omits the parameter schema on purpose: the
keys must come from what the model learned, not from copying the prompt.
"""

from __future__ import annotations

import json
import random
from typing import Any

from mixlab.demo.entities import Entities, FunctionSpec


def draw_request(rng: random.Random, fn: FunctionSpec) -> tuple[str, dict[str, str]]:
    """A natural-language request for ``fn`` and the argument values it implies (distinct per pool)."""
    values: dict[str, str] = {}
    used: set[str] = set()
    for p in fn.params:
        v = rng.choice([x for x in p.values if x not in used] or list(p.values))
        values[p.key] = v
        used.add(v)
    return rng.choice(fn.requests).format(**values), values


def _example(rng: random.Random, fn: FunctionSpec, request: str, call: str) -> str:
    form = rng.randrange(4)
    if form == 0:
        return f"User: {request}\nAssistant: {call}"
    if form == 1:
        return f"Request: {request}\nCall: {call}"
    if form == 2:
        return f'To handle "{request}" the assistant calls {call}.'
    return f'Tool {fn.name} ({fn.description}) is used for "{request}" as {call}'


def _api_doc(fn: FunctionSpec) -> str:
    return f"### {fn.name}\n{fn.description}\nParameters: {json.dumps(fn.schema())}"


def make_doc(rng: random.Random, ent: Entities, reserved: set[str]) -> str:
    """Sometimes API documentation, then 2-4 worked calls of 1-2 functions."""
    fns = rng.sample(ent.functions, rng.randint(1, 2))
    parts = [_api_doc(fns[0])] if rng.random() < 0.4 else []
    for _ in range(rng.randint(2, 4)):
        fn = rng.choice(fns)
        request, values = draw_request(rng, fn)
        while f"{fn.name}|{request}" in reserved:
            request, values = draw_request(rng, fn)
        parts.append(_example(rng, fn, request, fn.call(values)))
    return "\n\n".join(parts)


def make_item(rng: random.Random, ent: Entities) -> tuple[str, dict[str, Any]]:
    """A held-out task item: correct call vs other-function keys / one wrong key / rotated keys."""
    fn = rng.choice(ent.functions)
    request, values = draw_request(rng, fn)
    keys = [p.key for p in fn.params]
    n = len(keys)
    same_arity = [f for f in ent.functions if len(f.params) == n and f is not fn]
    foreign = [p.key for p in rng.choice(same_arity).params]
    one_wrong = list(keys)
    pos = rng.randrange(n)
    pool = [p.key for f in ent.functions if f is not fn for p in f.params if p.key not in keys]
    one_wrong[pos] = rng.choice(pool)
    rotated = keys[1:] + keys[:1]  # the right keys in the wrong slots
    distractors = [fn.call(values, foreign), fn.call(values, one_wrong), fn.call(values, rotated)]
    question = (
        f"Given the following function: {fn.name} with description: {fn.description} "
        f"if you are asked to {request} you will call..."
    )
    return f"{fn.name}|{request}", {
        "question": question,
        "correct": fn.call(values),
        "distractors": distractors,
    }
