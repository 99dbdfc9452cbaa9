"""Evaluation stage: multiple-choice tasks scored exactly like lm-eval, and per-domain held-out loss.

Modules: ``tasks`` (ELMB files, lm-eval YAMLs, HF datasets -> :class:`~mixlab.evaluation.tasks.Task`),
``multiple_choice`` (``evaluate_task``, ``evaluate_model``), ``domain_loss`` (``domain_losses``),
``results`` (``metrics_row`` and the files of ``mixlab eval``), ``logprobs`` (token log-probabilities),
``config`` (``EvalConfig``), ``command`` (``mixlab eval`` and ``mixlab domain-loss``).
"""
