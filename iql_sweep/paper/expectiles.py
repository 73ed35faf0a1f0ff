"""The paper's Figure 1: the asymmetric squared loss, expectiles of a normal distribution, and
conditional expectiles of a 2-D random variable fitted with the project's own expectile loss."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from iql_sweep.iql.losses import expectile_loss  # noqa: E402
from iql_sweep.iql.networks import mlp  # noqa: E402


def normal_expectile(tau: float, samples: int = 20_000, mean: float = 0.0, std: float = 1.0):
    """The tau-expectile of N(mean, std^2): argmin_m E[L2^tau(x - m)] with the project's loss,
    on ``samples`` evenly spaced normal quantiles, minimised by Newton steps (the loss is convex
    and piecewise quadratic in m, so Newton converges in a few steps)."""
    u = (torch.arange(samples, dtype=torch.float64) + 0.5) / samples
    x = mean + std * torch.special.ndtri(u)
    m = torch.tensor(mean, dtype=torch.float64, requires_grad=True)
    for _ in range(50):
        loss = expectile_loss(x - m, tau)
        (grad,) = torch.autograd.grad(loss, m, create_graph=True)
        (hess,) = torch.autograd.grad(grad, m)
        with torch.no_grad():
            step = grad / hess
            m -= step
        if abs(float(step)) < 1e-12:
            break
    return float(m.detach())


@dataclass
class ConditionalFit:
    """The 2-D sample, and per tau the network's expectile curve on a grid of x."""

    x: np.ndarray
    y: np.ndarray
    grid: np.ndarray
    curves: dict[float, np.ndarray]
    upper: np.ndarray  # the in-support maximum of y given x (the sample's upper envelope)


def conditional_sample(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x ~ U[0, 1]; y | x uniform between a wavy upper edge and a lower edge whose distance grows
    with x (so the mean and the maximum differ more and more)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n)
    high = _upper(x)
    y = high - rng.uniform(0.0, 1.0, n) * (0.4 + 1.2 * x)
    return x, y


def _upper(x: np.ndarray) -> np.ndarray:
    return 1.0 + 0.5 * np.sin(2 * np.pi * x)


def fit_conditional_expectiles(
    taus: tuple[float, ...] = (0.5, 0.9, 0.99), steps: int = 3000, seed: int = 0
) -> ConditionalFit:
    """A small MLP m_tau(x) per tau trained on the sample with :func:`expectile_loss`."""
    x, y = conditional_sample(seed=seed)
    xt = torch.as_tensor(x, dtype=torch.float32)[:, None]
    yt = torch.as_tensor(y, dtype=torch.float32)
    grid = np.linspace(0.0, 1.0, 200)
    curves = {}
    for tau in taus:
        torch.manual_seed(seed)
        net = mlp(1, (64, 64), 1)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        for _ in range(steps):
            loss = expectile_loss(yt - net(xt).squeeze(-1), tau)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            curves[tau] = net(torch.as_tensor(grid, dtype=torch.float32)[:, None]).squeeze(-1)
        curves[tau] = curves[tau].numpy()
    return ConditionalFit(x, y, grid, curves, _upper(grid))


def plot_expectiles(path: Path, fit_steps: int = 3000) -> dict[str, object]:
    """Write the three-panel figure; returns the numbers drawn (for tests and docs)."""
    taus_loss = (0.1, 0.5, 0.9)
    u = np.linspace(-1.5, 1.5, 301)
    taus = np.linspace(0.01, 0.99, 99)
    expectiles = np.array([normal_expectile(float(t)) for t in taus])
    fit = fit_conditional_expectiles(steps=fit_steps)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    for tau in taus_loss:
        loss = np.abs(tau - (u < 0)) * u**2
        ax.plot(u, loss, label=f"τ = {tau:g}")
    ax.set_xlabel("u")
    ax.set_ylabel("$L_2^τ(u) = |τ - 1(u<0)|\\,u^2$")
    ax.set_title("asymmetric squared loss")
    ax.legend()

    ax = axes[1]
    ax.plot(taus, expectiles, lw=2)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("τ")
    ax.set_ylabel("τ-expectile of N(0, 1)")
    ax.set_title("expectiles of a normal distribution")

    ax = axes[2]
    ax.scatter(fit.x, fit.y, s=3, color="0.7", label="samples (x, y)")
    ax.plot(fit.grid, fit.upper, "k--", lw=1, label="max of y | x (in support)")
    for tau, curve in fit.curves.items():
        ax.plot(fit.grid, curve, lw=2, label=f"τ = {tau:g}")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("conditional expectiles (MLP, project's loss)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"taus": taus, "expectiles": expectiles, "fit": fit}
