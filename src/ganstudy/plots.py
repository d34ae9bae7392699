"""Pictures: sample grids, loss curves, validation curves, rate curves with confidence bands
and per-seed spreads (PNG, written atomically)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from ganstudy.io import write_with  # noqa: E402


def grid_image(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one (H', W', C) uint8 array."""
    n, c, h, w = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    canvas = np.full((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[top : top + h, left : left + w] = x[i].transpose(1, 2, 0)
    return canvas


def save_grid(
    images: torch.Tensor, path: str | Path, scale: int = 2, nrow: int | None = None
) -> Path:
    """Save a sample grid as PNG (``nrow`` images a row; default square), upscaled with
    nearest-neighbour so small images stay crisp."""
    grid = grid_image(images, nrow)
    pil = Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid)
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    return write_with(path, lambda p: pil.save(p, format="PNG"))


def save_loss_curves(histories: dict[str, pd.DataFrame], path: str | Path, title: str) -> Path:
    """One panel per loss column; one line per history (e.g. per seed)."""
    columns = sorted({c for h in histories.values() for c in h.columns if c.startswith("Loss/")})
    fig, axes = plt.subplots(
        1, max(1, len(columns)), figsize=(5 * max(1, len(columns)), 3.2), squeeze=False
    )
    for ax, column in zip(axes[0], columns, strict=False):
        for label, h in histories.items():
            if column in h:
                ax.plot(h["step"], h[column], label=label, linewidth=1)
        ax.set_title(column)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def save_validation_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    path: str | Path,
    title: str,
    ylabel: str,
    chosen: dict[str, int] | None = None,
) -> Path:
    """One line per label: (steps (S,), mean (S,), CI half-width (S,), NaN = no band) with its
    band, and a dotted vertical line at each label's chosen length."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for label, (steps, mean, half) in curves.items():
        (line,) = ax.plot(steps, mean, label=label, linewidth=1.2)
        band = np.nan_to_num(half)
        ax.fill_between(steps, mean - band, mean + band, color=line.get_color(), alpha=0.2)
        if chosen and label in chosen:
            ax.axvline(chosen[label], color=line.get_color(), linestyle=":", linewidth=1)
    return _save_lines(fig, ax, path, title, "iteration", ylabel, legend_size=8)


def save_rate_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    path: str | Path,
    title: str,
    xlabel: str,
    ylabel: str,
    divider: float | None = None,
    marks: list[tuple[float, str]] | None = None,
) -> Path:
    """One line with markers per label: (x (S,), mean (S,), CI half-width (S,), NaN = no band)
    with its band clipped to [0, 1] (a rate's bounds); a dotted vertical line at ``divider``
    and a dashed horizontal line, labelled at the left, per (value, label) of ``marks``."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, (x, mean, half) in curves.items():
        (line,) = ax.plot(x, mean, marker="o", label=label)
        band = np.nan_to_num(half)  # one seed: no interval
        low, high = np.clip(mean - band, 0, 1), np.clip(mean + band, 0, 1)
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
    if divider is not None:
        ax.axvline(divider, color="grey", linestyle=":", linewidth=1)
    for value, text in marks or []:
        ax.axhline(value, color="grey", linestyle="--", linewidth=1)
        ax.annotate(text, (0.01, value), xycoords=("axes fraction", "data"), fontsize=7)
    return _save_lines(fig, ax, path, title, xlabel, ylabel, legend_size=7)


def save_seed_spread(
    values: dict[str, tuple[np.ndarray, float, float]],
    path: str | Path,
    title: str,
    ylabel: str,
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    pair_labels: tuple[str, str] = ("recall", "precision"),
) -> Path:
    """Per label, its seeds' values as dots and their mean with its CI half-width as an error
    bar: (values (S,), mean, half; NaN half = no bar). With ``pairs`` (label ->
    x (S,), y (S,)), a second panel with one point per seed of each label."""
    panels = 2 if pairs else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.0), squeeze=False)
    ax = axes[0, 0]
    for i, (ys, mean, half) in enumerate(values.values()):
        jitter = np.linspace(-0.12, 0.12, len(ys)) if len(ys) > 1 else np.zeros(len(ys))
        ax.scatter(i + jitter, ys, s=18, alpha=0.7, color=f"C{i}")
        ax.errorbar(i + 0.3, mean, yerr=None if np.isnan(half) else half, fmt="o", color="k")
    ax.set_xticks(range(len(values)), list(values), rotation=20)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    if pairs:
        ax = axes[0, 1]
        for i, (label, (x, y)) in enumerate(pairs.items()):
            ax.scatter(x, y, s=22, color=f"C{i}", label=label)
        ax.set_xlabel(pair_labels[0])
        ax.set_ylabel(pair_labels[1])
        ax.set_title("one point per seed", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def _save_lines(
    fig, ax, path: str | Path, title: str, xlabel: str, ylabel: str, legend_size: int
) -> Path:
    """Axis labels, title, grid and legend of a one-panel line plot, then ``_save``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Lay out, write the PNG atomically, and free the figure even when writing fails."""
    fig.tight_layout()
    try:
        return write_with(path, lambda p: fig.savefig(p, format="png", dpi=100))
    finally:
        plt.close(fig)
