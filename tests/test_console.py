"""The calm terminal: stage-mode bars, library warnings in the run's log, mixlab lines on the console."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import pytest

from mixlab.console import PROGRESS_ENV, calm, tqdm


def test_bars_follow_the_progress_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "stage")
    assert tqdm(total=3).disable and not tqdm(total=3, top=True).disable
    monkeypatch.setenv(PROGRESS_ENV, "none")
    assert tqdm(total=3, top=True).disable
    monkeypatch.setenv(PROGRESS_ENV, "all")
    assert not tqdm(total=3).disable


def test_calm_sends_library_noise_to_the_log_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = os.environ.get(PROGRESS_ENV)
    with calm(tmp_path) as log_file:
        assert os.environ[PROGRESS_ENV] == "stage"
        logging.getLogger("mixlab.pipeline").info("swarm done in 3.0s")
        logging.getLogger("transformers.modeling_utils").warning("some library chatter")
        warnings.warn("a FutureWarning from a library", FutureWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert "swarm done in 3.0s" in err
    assert "library chatter" not in err and "FutureWarning" not in err
    text = log_file.read_text(encoding="utf-8")
    assert "swarm done" in text and "library chatter" in text and "a FutureWarning from a library" in text
    assert log_file == tmp_path / "logs" / "mixlab.log"
    assert os.environ.get(PROGRESS_ENV) == before  # restored
