"""A second process reads the published warehouse while the pipeline writes: it is never locked
out and never sees a half-written table."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import date

from pipelines.batch import Window
from pipelines.contracts import load_contracts
from pipelines.sources.sample import SampleConnector
from pipelines.warehouse import Warehouse

READER = textwrap.dedent(
    """
    import json, pathlib, sys, time
    from pipelines.warehouse import Warehouse

    QUERY = "SELECT count(*), sum(blocks) FROM btc_network_daily"
    warehouse, stop = Warehouse(sys.argv[1]), pathlib.Path(sys.argv[2])
    seen, errors, during = set(), [], 0  # during: reads while the writer was writing
    held = warehouse.reader()  # a connection held across publishes keeps its snapshot
    print("ready", flush=True)
    deadline = time.monotonic() + 300  # only if the test dies without saying stop
    while not stop.exists() and time.monotonic() < deadline:
        try:
            with warehouse.reader() as con:  # a fresh connection sees the latest publish
                seen.add(con.execute(QUERY).fetchone())
            seen.add(held.execute(QUERY).fetchone())
            during += not stop.exists()
        except Exception as e:
            errors.append(repr(e))
    print(json.dumps({"seen": sorted(seen), "errors": errors[:5], "during": during}))
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
        )

    write(full)
    expected = (
        Warehouse(warehouse.directory)
        .reader()
        .execute("SELECT count(*), sum(blocks) FROM btc_network_daily")
        .fetchone()
    )
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(warehouse.directory), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout.readline() == "ready\n"
    # A count of writes, not a duration: a slower machine writes fewer in the same time.
    for write_number in range(12):
        write(part if write_number % 2 else full)  # each write deletes then re-inserts rows
    stop.touch()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    report = json.loads(out)
    assert report["errors"] == []
    assert report["during"] > 0  # the reader read while the writer wrote
    assert [tuple(s) for s in report["seen"]] == [expected]  # never a half-written table
