"""CLI for whole-loop commands: ``mixlab run``, ``mixlab demo`` and ``mixlab swarm``."""

from __future__ import annotations

import argparse
from pathlib import Path

from mixlab.config import load_config
from mixlab.console import calm


def _verbosity(args: argparse.Namespace) -> int:
    return -1 if getattr(args, "quiet", False) else (1 if getattr(args, "verbose", False) else 0)


def _print_summary(summary: object) -> None:
    from mixlab.pipeline import RunSummary

    assert isinstance(summary, RunSummary)
    print(f"report:          {summary.report}")
    print(f"optimal mixture: {summary.optimal}")
    if summary.dataset is not None:
        print(f"final dataset:   {summary.dataset} (manifest: {summary.dataset / 'manifest.json'})")
    else:
        print(
            "final dataset:   not built, the chosen optimum is untrusted (see below; trust.allow_untrusted)"
        )
    if len(summary.rounds) > 1:
        moves = " -> ".join(
            f"{r['predicted']:.4g} [{r['interval'][0]:.4g}, {r['interval'][1]:.4g}]" for r in summary.rounds
        )
        print(f"rounds:          {len(summary.rounds)}; predicted optimum per round: {moves}")
    print(f"final run:       {_final_line(summary)}")
    for verdict in summary.trust.values():
        print(f"  {verdict}")
    if summary.confirm is not None:
        print(f"confirmation:    {summary.confirm['headline']}")
        for line in summary.confirm["verdicts"]:
            if line.startswith("optimal_"):
                print(f"  {line}")
    if summary.timings:
        print("timings (s):     " + ", ".join(f"{k} {v:.0f}" for k, v in summary.timings.items()))


def _final_line(summary: object) -> str:
    """The final run in one line: S = after - before summed over tasks, or why it did not run."""
    from mixlab.pipeline import RunSummary

    assert isinstance(summary, RunSummary)
    final = summary.final
    if final is None:
        return summary.final_note or "not run"
    if "S" not in final:
        return f"model {final['model']} (final.evaluate is false)"
    parts = [f"{m} {final['S'][m]['total']:+.4f}" for m in ("acc", "acc_norm", "gold_bpb") if m in final["S"]]
    return f"S = after - before summed over {len(final['tasks'])} tasks: {', '.join(parts)}; model {final['model']}"


def _cmd_run(args: argparse.Namespace) -> int:
    from mixlab.pipeline import run_pipeline

    cfg = load_config(args.config)
    if args.out:
        cfg = cfg.model_copy(update={"workdir": args.out})
    if args.quick:
        cfg = cfg.quick()
    with calm(cfg.workdir, _verbosity(args)) as log_file:
        summary = run_pipeline(cfg)
    _print_summary(summary)
    print(f"log:             {log_file}")
    return 1 if summary.final_note.startswith("failed") else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mixlab.demo.run import run_demo

    with calm(args.out, _verbosity(args)) as log_file:
        summary = run_demo(Path(args.out), quick=args.quick, workers=args.workers, proxies=args.proxies)
    _print_summary(summary)
    print(f"log:             {log_file}")
    return 0


def _cmd_swarm(args: argparse.Namespace) -> int:
    from mixlab.pipeline import run_swarm_step
    from mixlab.pool.pool import Pool
    from mixlab.swarm import read_ratios

    cfg = load_config(args.config)
    if args.workdir:
        cfg = cfg.model_copy(update={"workdir": args.workdir})
    pool = Pool.open(Path(cfg.workdir) / "pool")
    metrics = run_swarm_step(cfg, pool, read_ratios(args.ratios), args.name)
    failed = int((metrics.get("status") == "failed").sum()) if "status" in metrics else 0
    print(f"swarm: {len(metrics)} runs in {Path(cfg.workdir) / args.name / 'metrics.csv'} ({failed} failed)")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from mixlab.status import format_status, run_status

    print(format_status(run_status(args.dir)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    r = sub.add_parser("run", help="run the whole loop from a pipeline YAML")
    r.add_argument("config", help="pipeline YAML")
    r.add_argument(
        "--out", "--workdir", dest="out", default=None, help="run directory (overrides the file's workdir)"
    )
    r.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test scale: few mixtures and short proxies, small final run (PipelineConfig.quick)",
    )
    r.set_defaults(func=_cmd_run)

    d = sub.add_parser("demo", help="end-to-end run on the embedded demo world (no downloads)")
    d.add_argument("--out", default="runs/demo", help="output folder")
    d.add_argument("--quick", action="store_true", help="a smaller, faster run (used by the tests)")
    d.add_argument("--workers", type=int, default=2, help="processes for shard stages and proxy runs")
    d.add_argument(
        "--proxies", choices=["swarm", "merged", "mixmin"], default="swarm", help="proxies.method of the run"
    )
    d.set_defaults(func=_cmd_demo)

    st = sub.add_parser("status", help="what a run has done, is running, failed and has left, with times")
    st.add_argument("dir", help="the run's workdir (mixlab run) or --out folder (mixlab demo)")
    st.set_defaults(func=_cmd_status)

    s = sub.add_parser("swarm", help="train + evaluate one proxy per row of a ratios.csv (pool must exist)")
    s.add_argument("config", help="pipeline YAML (proxy, select and evaluation sections are used)")
    s.add_argument("--ratios", required=True, help="ratios.csv: run id + one column per domain")
    s.add_argument("--name", default="swarm", help="subfolder of the workdir for runs and metrics.csv")
    s.add_argument("--workdir", default=None, help="override the config's workdir")
    s.set_defaults(func=_cmd_swarm)
