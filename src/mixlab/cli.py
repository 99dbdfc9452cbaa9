"""The ``mixlab`` command line: one subcommand per stage, plus ``run`` and ``demo``.

Each stage package owns its subcommands in ``<stage>/command.py`` through a ``register(subparsers)``
function that adds parsers and sets ``func`` (a callable taking the parsed ``argparse.Namespace`` and
returning an exit code). This file only knows the list of stages, in the order data flows.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from mixlab import __version__

#: Stage command modules in data-flow order.
COMMAND_MODULES: tuple[str, ...] = (
    "mixlab.pool.command",  # ingest, attrs, export
    "mixlab.domains.command",  # partition, classify, cluster
    "mixlab.quality.command",  # quality, perplexity, density
    "mixlab.dedup.command",  # dedup, decontam
    "mixlab.affinity.command",  # affinity
    "mixlab.mixtures.command",  # mixtures
    "mixlab.select.command",  # select, build
    "mixlab.proxies.command",  # train, swarm
    "mixlab.evaluation.command",  # eval, domain-loss
    "mixlab.regression.command",  # fit
    "mixlab.regression.signal_command",  # signal
    "mixlab.search.command",  # search
    "mixlab.report.command",  # report
    "mixlab.pipeline_command",  # run, demo, status
    "mixlab.init_command",  # init
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixlab",
        description="Find the best training-data mixture for a model and its target tasks, by experiment.",
    )
    parser.add_argument("--version", action="version", version=f"mixlab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages, show every bar")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and results only, no bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:  # a stage not built yet in a development tree
            continue
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:  # user errors: one clear line, no traceback
        if args.verbose:
            raise
        print(f"mixlab {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
