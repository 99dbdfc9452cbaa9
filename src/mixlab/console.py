"""What mixlab shows on the terminal: progress bars, log lines, and where library noise goes.

Every progress bar in mixlab is :class:`tqdm` from this module. Its display mode comes from the
``MIXLAB_PROGRESS`` environment variable, read when a bar is created (so worker processes inherit it):

* ``all`` (default, single-stage commands): every bar shows;
* ``stage`` (``mixlab run`` / ``mixlab demo``): only the bars made with ``top=True`` (one per long step, such
  as the swarm's run counter) show; the per-batch bars of tokenisation, training and scoring stay hidden;
* ``none`` (``-q``): no bar.

:func:`calm` sets up a pipeline run: ``stage`` bars, mixlab's own INFO lines on the terminal, and everything
else (library warnings, transformers and peft messages, DEBUG lines) in ``<run dir>/logs/mixlab.log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm as _tqdm

__all__ = ["LOG_FILE_ENV", "PROGRESS_ENV", "calm", "log_to_file", "tqdm"]

PROGRESS_ENV = "MIXLAB_PROGRESS"
LOG_FILE_ENV = "MIXLAB_LOG_FILE"
_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


class tqdm(_tqdm):
    """tqdm that honours ``MIXLAB_PROGRESS``; ``top=True`` marks a bar shown in ``stage`` mode."""

    def __init__(self, *args: Any, top: bool = False, **kwargs: Any) -> None:
        mode = os.environ.get(PROGRESS_ENV, "all")
        if mode == "none" or (mode == "stage" and not top):
            kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def log_to_file(path: str | Path) -> logging.Handler:
    """Send every log record (DEBUG and up) and every Python warning to ``path`` (appended)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    return handler


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()


def worker_setup() -> None:
    """In a worker process: the parent's log file and quiet libraries (called by executors' initialisers)."""
    path = os.environ.get(LOG_FILE_ENV)
    if path:
        for h in logging.getLogger().handlers[:]:
            logging.getLogger().removeHandler(h)
        log_to_file(path)
        _quiet_libraries()


@contextlib.contextmanager
def calm(run_dir: str | Path, verbosity: int = 0) -> Iterator[Path]:
    """A pipeline run's terminal: one bar per long step, mixlab's INFO lines, the rest in the run's log.

    ``verbosity``: -1 (``-q``) warnings only and no bars; 0 mixlab INFO lines and stage bars; 1 (``-v``)
    every bar and DEBUG lines on the terminal too. Yields the log file's path.
    """
    log_path = Path(run_dir) / "logs" / "mixlab.log"
    saved_env = {k: os.environ.get(k) for k in (PROGRESS_ENV, LOG_FILE_ENV)}
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    os.environ[PROGRESS_ENV] = {-1: "none", 0: "stage"}.get(verbosity, "all")
    os.environ[LOG_FILE_ENV] = str(log_path)
    for h in saved_handlers:
        root.removeHandler(h)
    file_handler = log_to_file(log_path)
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING if verbosity < 0 else (logging.DEBUG if verbosity > 0 else logging.INFO))
    console.setFormatter(
        logging.Formatter("%(message)s" if verbosity <= 0 else "%(levelname)s %(name)s: %(message)s")
    )
    if verbosity <= 0:  # only mixlab's own lines reach the terminal; libraries' go to the file
        console.addFilter(lambda record: record.name.startswith("mixlab"))
    root.addHandler(console)
    _quiet_libraries()
    try:
        yield log_path
    finally:
        root.removeHandler(console)
        root.removeHandler(file_handler)
        file_handler.close()
        for h in saved_handlers:
            root.addHandler(h)
        root.setLevel(saved_level)
        logging.captureWarnings(False)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
