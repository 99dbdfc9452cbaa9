"""``mixlab init FILE``: a commented starter pipeline that runs as it is, on the embedded demo world.

The world (corpus files, tasks, tokenizer, base model) is generated next to the file, and every key of the
written YAML carries the description of its field from the typed config models, so the file documents
itself. ``mixlab run FILE`` then runs the whole loop; edit it to point at your own data.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from mixlab.config import PipelineConfig

__all__ = ["commented_yaml", "register"]

_HEADER = """\
# mixlab pipeline: {what}
# Run it with:   mixlab run {name}      (then: mixlab status {workdir})
# A smoke test first, at a fraction of the cost:   mixlab run {name} --quick --out {workdir}-quick
# (--quick: few mixtures, short proxies, a small final run; see PipelineConfig.quick)
# Every key below is described by the comment above it. Point `ingest.inputs`, `ingest.tokenizer`,
# `proxy.base_model` and `evaluation.tasks` at your own corpus, tokenizer, model and tasks to use it for real.
"""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``Model``, ``Model | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _scalar(key: str, value: Any, indent: str) -> list[str]:
    text = yaml.safe_dump({key: value}, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return [indent + text.removeprefix("{").removesuffix("}")]


def commented_yaml(
    raw: dict[str, Any], model: type[BaseModel] = PipelineConfig, indent: str = ""
) -> list[str]:
    """YAML lines of ``raw`` with each key's field description from ``model`` as a comment above it."""
    lines: list[str] = []
    fields = model.model_fields
    for key, value in raw.items():
        field = fields.get(key)
        desc = field.description if field is not None else None
        sub = _model_of(field.annotation) if field is not None else None
        if desc is None and sub is not None:
            desc = (sub.__doc__ or "").strip().splitlines()[0] if sub.__doc__ else None
        if desc:
            lines.append(f"{indent}# {desc}")
        if isinstance(value, dict) and sub is not None and value:
            lines.append(f"{indent}{key}:")
            lines.extend(commented_yaml(value, sub, indent + "  "))
        else:
            lines.extend(_scalar(key, value, indent))
    return lines


#: The final run's settings written into a starter file (the challenge's recipe, spelled out).
_FINAL_KEYS = ("enabled", "lr", "epochs", "max_steps", "block_size", "batch_size", "r", "alpha", "dropout")


def _with_late_sections(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` plus the ``rounds`` and ``final`` sections, spelled out so that the file documents them.

    One round of the file's mixtures (today's behaviour; e.g. ``[64, 32, 16]`` adds proposed rounds) and
    the final run with the challenge's recipe.
    """
    from mixlab.final.config import FinalConfig

    final = FinalConfig().model_dump(mode="json")
    out = dict(raw)
    out.setdefault("rounds", [int(raw["mixtures"]["n"])])
    recipe = {k: final[k] for k in _FINAL_KEYS} | {"target_modules": final["target_modules"]}
    out["final"] = recipe | dict(raw.get("final") or {})  # the file's own settings win
    return out


def _cmd_init(args: argparse.Namespace) -> int:
    from mixlab.demo.run import FULL, QUICK, prepare_demo

    path = Path(args.file)
    if path.exists() and not args.force:
        raise FileExistsError(f"{path} exists; use --force to overwrite it")
    workdir = Path(args.workdir) if args.workdir else path.parent / (path.stem + "-run")
    from mixlab.console import calm

    print(f"generating the demo world, tokenizer and base model under {workdir} ...")
    with calm(workdir, -1 if getattr(args, "quiet", False) else 0):
        raw = prepare_demo(workdir, QUICK if args.quick else FULL, workers=args.workers)
    raw = _with_late_sections(raw)
    PipelineConfig.model_validate(raw)  # what is written must run as it is
    what = "the embedded demo world" + (" (quick scale)" if args.quick else "")
    text = _HEADER.format(what=what, name=path, workdir=raw["workdir"]) + "\n"
    text += "\n".join(commented_yaml(raw)) + "\n"
    loaded = yaml.safe_load(text)
    if loaded != raw:
        raise RuntimeError("the commented YAML does not read back as the config it was made from")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    print(f"wrote {path}; run it with: mixlab run {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``mixlab init``."""
    p = sub.add_parser("init", help="write a commented starter pipeline that runs on the embedded demo world")
    p.add_argument("file", help="pipeline YAML to write")
    p.add_argument("--workdir", default=None, help="run folder (default: FILE's stem + '-run', beside it)")
    p.add_argument("--quick", action="store_true", help="the quick demo scale (about a minute per stage)")
    p.add_argument("--workers", type=int, default=2, help="processes for shard stages and proxy runs")
    p.add_argument("--force", action="store_true", help="overwrite FILE")
    p.set_defaults(func=_cmd_init)
