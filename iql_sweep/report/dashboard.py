"""A W&B workspace for every sweep, built with W&B's maintained library (``wandb-workspaces``).

One workspace view per dataset of the sweep (runs filtered on their W&B group and dataset),
with the panels a reader of the paper wants:

- score against tau: a scatter of the last normalised score over tau (coloured by beta) and a
  bar per configuration (runs grouped by tau and beta, mean and std band over seeds);
- learning curves grouped by configuration (mean and band over seeds);
- hyper-parameters: parallel coordinates over tau, beta, seed and the final score, and W&B's
  parameter importance for the score;
- losses and advantages (V, Q, actor losses, mean advantage, clipped AWR weights);
- fine-tuning sweeps: the offline -> online curves, with the phase (0/1) and where it starts.

Without a network or key the definitions are written to ``<experiment>/dashboard/*.json``;
``iql-sweep dashboard EXPERIMENT --publish`` saves them to W&B once the runs are synced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws

from iql_sweep.experiment import Experiment
from iql_sweep.spec import SweepSpec

SCORE = "normalized_score"
LOSSES = ("value_loss", "q_loss", "actor_loss", "advantage_mean", "awr_clip_fraction")


@dataclass
class Dashboard:
    """One workspace view: the dataset it shows and where its definition was written."""

    dataset: str
    workspace: ws.Workspace
    path: Path


def _grouped(y: list[str], title: str) -> wr.LinePlot:
    return wr.LinePlot(
        title=title,
        x="Step",
        y=y,
        groupby=wr.Config("configuration"),
        groupby_aggfunc="mean",
        groupby_rangefunc="stddev",
    )


def sections(spec: SweepSpec) -> list[ws.Section]:
    """The panels of one dataset's view."""
    out = [
        ws.Section(
            name="Score against τ and β",
            is_open=True,
            panels=[
                wr.ScatterPlot(
                    title="last normalised score against τ (colour: β)",
                    x=wr.Config("expectile"),
                    y=wr.SummaryMetric(SCORE),
                    z=wr.Config("beta"),
                ),
                wr.BarPlot(
                    title="normalised score per configuration (mean ± std over seeds)",
                    metrics=[SCORE],
                    groupby=wr.Config("configuration"),
                    groupby_aggfunc="mean",
                    groupby_rangefunc="stddev",
                ),
            ],
        ),
        ws.Section(
            name="Learning curves",
            is_open=True,
            panels=[
                _grouped([SCORE], "normalised score (mean ± std over seeds)"),
                _grouped(["return_mean"], "return (mean ± std over seeds)"),
            ],
        ),
        ws.Section(
            name="Hyper-parameters",
            is_open=True,
            panels=[
                wr.ParallelCoordinatesPlot(
                    title="τ, β, seed and the final score",
                    columns=[
                        wr.ParallelCoordinatesPlotColumn(metric=wr.Config("expectile")),
                        wr.ParallelCoordinatesPlotColumn(metric=wr.Config("beta"), log=True),
                        wr.ParallelCoordinatesPlotColumn(metric=wr.Config("seed")),
                        wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(SCORE)),
                    ],
                ),
                wr.ParameterImportancePlot(with_respect_to=SCORE),
            ],
        ),
        ws.Section(
            name="Losses and advantages",
            panels=[_grouped([key], key.replace("_", " ")) for key in LOSSES],
        ),
    ]
    training = spec.training
    if training.online_steps:
        start = training.steps
        out.append(
            ws.Section(
                name="Offline → online fine-tuning",
                is_open=True,
                panels=[
                    wr.MarkdownPanel(
                        markdown=f"Online fine-tuning starts after update **{start}**: "
                        f"{training.online_steps} environment steps follow, "
                        f"{training.updates_per_env_step} update(s) each. The phase "
                        "panel is 0 offline and 1 online."
                    ),
                    _grouped([SCORE], "normalised score, offline then online"),
                    _grouped(["online_phase"], "phase (0 offline, 1 online)"),
                    _grouped(["online_return"], "return of the training episodes (online)"),
                ],
            )
        )
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def build(experiment: Path, entity: str | None = None) -> list[Dashboard]:
    """The workspace views of a sweep, from its spec copy; definitions written as JSON."""
    sweep = Experiment(experiment)
    spec = sweep.spec
    settings = spec.wandb
    name = spec.name
    folder = sweep.dashboard_dir
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for dataset in spec.datasets:
        # Runs are selected by their W&B group and dataset. Not by the config key "sweep":
        # wandb-workspaces maps that name onto W&B's own "Sweep" field, which ours are not in.
        workspace = ws.Workspace(
            entity=entity or settings.entity or "",
            project=settings.project,
            name=f"iql-sweep {name} - {dataset}",
            sections=sections(spec),
            runset_settings=ws.RunsetSettings(
                filters=[
                    ws.Metric("Group") == settings.group_for(name, dataset),
                    ws.Config("dataset") == dataset,
                ],
            ),
        )
        path = folder / f"{_slug(dataset)}.json"
        definition = workspace._to_model().model_dump_json(  # the library's own serialisation
            by_alias=True, exclude_none=True, indent=1
        )
        path.write_text(definition)
        out.append(Dashboard(dataset, workspace, path))
    return out


def publish(dashboards: list[Dashboard]) -> list[str]:
    """Save the views to W&B (needs a key and the network); returns their URLs."""
    import wandb

    entity = None
    urls = []
    for board in dashboards:
        if not board.workspace.entity:
            entity = entity or wandb.Api(timeout=20).default_entity
            board.workspace.entity = entity
        board.workspace.save()
        urls.append(board.workspace.url)
    return urls


def how_to_publish(experiment: Path) -> str:
    return (
        f"to publish: wandb login; iql-sweep sync {experiment}; "
        f"iql-sweep dashboard {experiment} --publish"
    )
