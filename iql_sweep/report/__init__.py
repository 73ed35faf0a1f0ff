"""What a sweep leaves for people: result tables with interval estimates (``tables``, ``stats``),
plots (``plots``), the report page (``page``), written together by ``build``; the W&B workspace
(``dashboard``) and the upload of offline runs (``wandb_sync``)."""

from iql_sweep.report.build import load_results, write_report

__all__ = ["load_results", "write_report"]
