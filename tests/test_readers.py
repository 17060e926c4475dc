"""A second process reads the published warehouse while the pipeline writes: it is never locked
out and never sees a half-written table."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import date

from pipelines.contracts import load_contracts
from pipelines.sources.sample import SampleConnector
from pipelines.validation import Window
from pipelines.warehouse import Warehouse

READER = textwrap.dedent(
    """
    import json, sys, time
    from pipelines.warehouse import Warehouse

    QUERY = "SELECT count(*), sum(blocks) FROM btc_network_daily"
    warehouse, seconds = Warehouse(sys.argv[1]), float(sys.argv[2])
    seen, errors, reads = set(), [], 0
    held = warehouse.reader()  # a connection held across publishes keeps its snapshot
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with warehouse.reader() as con:  # a fresh connection sees the latest publish
                seen.add(con.execute(QUERY).fetchone())
            seen.add(held.execute(QUERY).fetchone())
            reads += 1
        except Exception as e:
            errors.append(repr(e))
    print(json.dumps({"seen": sorted(seen), "errors": errors[:5], "reads": reads}))
    """
)


def test_reader_process_during_writes(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse")
    contract = load_contracts()["btc_network_daily"]
    connector = SampleConnector()
    full = Window(date(2024, 3, 21), date(2024, 5, 21))
    part = Window(date(2024, 4, 1), date(2024, 4, 11))

    def write(window: Window) -> None:
        frame = connector.fetch("btc_network_daily", window, "date")
        warehouse.write(
            contract,
            frame,
            origin="test",
            window=window,
            partition_column="date",
            rebuildable=False,
        )

    write(full)
    expected = (
        Warehouse(warehouse.directory)
        .reader()
        .execute("SELECT count(*), sum(blocks) FROM btc_network_daily")
        .fetchone()
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(warehouse.directory), "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    writes, deadline = 0, time.monotonic() + 5
    while time.monotonic() < deadline:
        write(part if writes % 2 else full)  # each write deletes then re-inserts rows
        writes += 1
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    report = json.loads(out)
    assert report["errors"] == []
    assert report["reads"] > 20 and writes > 10
    assert [tuple(s) for s in report["seen"]] == [expected]  # never a half-written table
