"""Charts drawn on the server as inline SVG: nothing to load, no script."""

from __future__ import annotations

from html import escape

PALETTE = ("#1f5f8b", "#c8553d", "#2e8540", "#8e6c8a", "#d4a017", "#4f6d7a", "#a23b72", "#3b8ea5",
           "#6a994e", "#bc4749", "#5e548e", "#e07a5f", "#3d405b", "#81b29a")


def stacked_bars(months: list[str], series: list[tuple[str, list[int]]], *, title: str,
                 width: int = 760, height: int = 300) -> str:
    """Bars per month, stacked by series (a district each): ``series`` is ``(label, values)``,
    one value per month (a suppressed cell drawn as 0). Returns an ``<svg>`` element."""
    left, right, top, bottom = 48, 12, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(v[i] for _, v in series) for i in range(len(months))]
    peak = max(totals + [1])
    step = _nice_step(peak)
    top_value = step * (-(-peak // step))
    slot = plot_w / max(len(months), 1)
    bar = slot * 0.7
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-labelledby="chart-title" class="chart">',
             f'<title id="chart-title">{escape(title)}</title>',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    for k in range(0, top_value + 1, step):
        y = top + plot_h - plot_h * k / top_value
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#dddddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#333">{k}</text>')
    for i, month in enumerate(months):
        x = left + slot * i + (slot - bar) / 2
        y = top + plot_h
        for j, (label, values) in enumerate(series):
            h = plot_h * values[i] / top_value
            if h <= 0:
                continue
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(label)} {escape(month)}: '
                         f'{values[i]}</title></rect>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" font-size="11" '
                     f'fill="#333">{escape(month)}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#333"/>')
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(peak: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000):
        if peak / step <= 6:
            return step
    return max(1, peak // 5)


def legend(labels: list[str]) -> list[tuple[str, str]]:
    return [(label, PALETTE[j % len(PALETTE)]) for j, label in enumerate(labels)]
