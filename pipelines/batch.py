"""What a connector is asked for and what it hands over: a range of UTC days, and its rows as a
Polars frame or as a Scan of files. Connectors import this module, never the warehouse or the
rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Window:
    """A range of UTC days, end exclusive."""

    start: date
    end: date

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]

    def without(self, days: list[date]) -> list[Window]:
        """The window as the runs of its days that are not in `days`."""
        runs: list[Window] = []
        for day in self.days():
            if day in days:
                continue
            if runs and runs[-1].end == day:
                runs[-1] = Window(runs[-1].start, day + timedelta(days=1))
            else:
                runs.append(Window(day, day + timedelta(days=1)))
        return runs

    def chunks(self, days: int) -> list[Window]:
        """The window cut into windows of `days` days (the last may be shorter)."""
        return [
            Window(self.start + timedelta(days=i),
                   min(self.end, self.start + timedelta(days=i + days)))
            for i in range(0, (self.end - self.start).days, days)
        ]  # fmt: skip


class Scan(str):
    """A query that reads files where they lie (Parquet, CSV): validated by each rule reading it
    again, instead of copied into the warehouse first. Other queries are run once, into a table."""


@dataclass(frozen=True)
class Part:
    """A slice of a window's rows: those whose `column` is `value` (one site's telemetry). A
    write of a part replaces only its rows, so that writers of different parts can stage them
    at once and only take turns to commit."""

    column: str
    value: str

    def __str__(self) -> str:
        return f"{self.column}={self.value}"
