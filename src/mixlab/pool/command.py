"""CLI for the pool: ``mixlab ingest`` and ``mixlab attrs``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mixlab.executors import add_executor_arguments, executor_from_args
from mixlab.pool.config import IngestConfig
from mixlab.pool.ingest import ingest_config
from mixlab.pool.pool import Pool
from mixlab.stage_config import add_config_argument, flag_values, stage_config

#: ``mixlab ingest`` flags, named like the IngestConfig fields they override.
INGEST_FLAGS = ("tokenizer", "shard_docs", "max_chars", "text_field", "decode_tokenizer", "on_error")


def _cmd_ingest(args: argparse.Namespace) -> int:
    overrides = flag_values(args, INGEST_FLAGS)
    if args.inputs:
        overrides["inputs"] = list(args.inputs)
    cfg = stage_config(
        IngestConfig,
        args.config,
        "ingest",
        overrides,
        flag_names={"inputs": "INPUTS", "tokenizer": "--tokenizer"},
    )
    with executor_from_args(args) as executor:
        pool = ingest_config(cfg, args.out, force=args.force, executor=executor)
    meta = pool.meta
    records = meta.get("documents_in", pool.n_docs() + pool.quarantine_count())
    print(
        f"pool {pool.root}: {records} records read -> {pool.n_docs()} documents "
        f"({pool.n_tokens()} tokens, {len(pool.shards)} shards) + {pool.quarantine_count()} quarantined; "
        f"{meta.get('blank_lines', 0)} blank lines"
    )
    for reason, n in meta.get("quarantine_reasons", {}).items():
        print(f"  quarantined ({reason}): {n}")
    for bad in meta.get("quarantined_files", []):
        print(f"  quarantined file {bad['file']}: {bad['reason']}")
    for skip in meta.get("skipped_files", []):
        print(f"  skipped {skip['file']}: {skip['reason']}")
    if pool.n_docs() == 0:
        print(f"warning: the pool holds no documents; see {pool.root / 'quarantine.jsonl'}")
    return 0


def _cmd_attrs(args: argparse.Namespace) -> int:
    pool = Pool.open(args.pool)
    if args.name is None:
        for name in pool.attributes():
            state = "complete" if pool.has_attr(name) else "incomplete"
            print(f"{name}\t{state}")
        return 0
    df = pool.read_attr(args.name)
    out = Path(args.out) if args.out else None
    rows: Any = df.to_dict(orient="records")
    if out is None:
        for row in rows[: args.head]:
            print(json.dumps(row, default=_json_default, ensure_ascii=False))
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        df.to_parquet(out, index=False)
    else:
        with out.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, default=_json_default, ensure_ascii=False) + "\n")
    print(f"wrote {len(df)} rows of attribute {args.name!r} to {out}")
    return 0


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ingest", help="read JSONL/Parquet/LMFlow/HF/ClimbLab inputs into a sharded pool")
    p.add_argument("inputs", nargs="*", help="files or folders to read (default: the config's ingest.inputs)")
    p.add_argument("--out", required=True, help="pool folder to create")
    add_config_argument(p, "ingest")
    p.add_argument(
        "--tokenizer", default=None, help="training tokenizer: folder, tokenizer.json, .model or name"
    )
    p.add_argument("--shard-docs", type=int, default=None, help="documents per shard (default 10000)")
    p.add_argument(
        "--max-chars", type=int, default=None, help="quarantine documents longer than this (default 1000000)"
    )
    p.add_argument("--text-field", default=None, help="name of the text field/column (default text)")
    p.add_argument(
        "--decode-tokenizer", default=None, help="tokenizer that decodes ClimbLab token ids (GPT-2)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing pool made with other settings (only a mixlab pool or an empty folder)",
    )
    p.add_argument(
        "--on-error",
        choices=("quarantine", "fail"),
        default=None,
        help="a bad record or file: quarantine it and go on (default), or stop with an error",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="input files and Parquet row groups read at once (default 1)"
    )
    add_executor_arguments(p)
    p.set_defaults(func=_cmd_ingest)

    a = sub.add_parser("attrs", help="list a pool's attributes, or export one joined with document ids")
    a.add_argument("pool", help="pool folder")
    a.add_argument("name", nargs="?", default=None, help="attribute name (omit to list attributes)")
    a.add_argument("--out", default=None, help="FILE.jsonl (one object per document) or FILE.parquet")
    a.add_argument("--head", type=int, default=10, help="rows to print when --out is not given")
    a.set_defaults(func=_cmd_attrs)
