"""Plots declared in a SQL asset's header, rendered after each write into the asset's metadata
(an image in markdown, which the Dagster UI shows).

    -- plot: {title: Hashprice, x: date, y: [hashprice_usd_per_ph_day], where: "scenario = 'base'"}

`by` draws one line per value of a column; each `y` column gets its own panel.
"""

from __future__ import annotations

import base64
import io

import duckdb
from pydantic import Field

from pipelines.declarations import Strict
from pipelines.sqltext import quote


class PlotSpec(Strict):
    title: str
    x: str
    y: list[str] = Field(min_length=1)
    by: str | None = None
    where: str | None = None


def render_png(con: duckdb.DuckDBPyConnection, table: str, spec: PlotSpec) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display here
    import matplotlib.pyplot as plt

    columns = ", ".join(quote(c) for c in [spec.x, *spec.y, *([spec.by] if spec.by else [])])
    where = f"WHERE {spec.where}" if spec.where else ""  # SQL of the header, like a rule's
    frame = con.sql(f"SELECT {columns} FROM {quote(table)} {where} ORDER BY {quote(spec.x)}").pl()
    groups = frame.partition_by(spec.by, as_dict=True) if spec.by else {(None,): frame}
    figure, axes = plt.subplots(len(spec.y), 1, figsize=(9, 2.6 * len(spec.y)), sharex=True,
                                squeeze=False)  # fmt: skip
    for axis, y in zip(axes[:, 0], spec.y, strict=True):
        for (name,), rows in sorted(groups.items(), key=lambda item: str(item[0])):
            axis.plot(rows[spec.x].to_list(), rows[y].to_list(), label=name, linewidth=1.2)
        axis.set_ylabel(y, fontsize=8)
        axis.grid(alpha=0.3)
    if spec.by:
        axes[0, 0].legend(fontsize=7, ncol=4)
    axes[0, 0].set_title(spec.title)
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def markdown_image(png: bytes, title: str) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"
