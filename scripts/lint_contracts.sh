#!/usr/bin/env bash
# Lint data contracts against the ODCS JSON Schema of their apiVersion with `datacontract lint`
# (datacontract-cli, pinned; run isolated through `uv tool run`: it is not a project dependency,
# its pins conflict with ours). Prints ok/FAILED per contract, with every schema error of a failing
# one, and exits 1 if any contract fails.
#
#   scripts/lint_contracts.sh                      # every data_contracts/*.odcs.yaml
#   scripts/lint_contracts.sh path/to/x.odcs.yaml  # some
#
# The CLI's own entry point is called once per contract within one Python process: starting the
# CLI costs ~3 s, a lint ~0.1 s.
set -euo pipefail

cd "$(dirname "$0")/.."
DATACONTRACT_CLI="${DATACONTRACT_CLI:-datacontract-cli==1.2.8}"
if [ "$#" -gt 0 ]; then contracts=("$@"); else contracts=(data_contracts/*.odcs.yaml); fi

# COLUMNS: wide enough that the CLI prints its errors whole
COLUMNS=300 exec python3 -m uv tool run --quiet --from "$DATACONTRACT_CLI" python - "${contracts[@]}" <<'PY'
import contextlib
import io
import re
import sys

from datacontract.cli import main

failed = []
contracts = sys.argv[1:]
for contract in contracts:
    out = io.StringIO()
    sys.argv = ["datacontract", "lint", "--all-errors", contract]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main()
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
    if code == 0:
        print(f"ok      {contract}")
        continue
    failed.append(contract)
    print(f"FAILED  {contract}")
    text = out.getvalue()
    errors = re.findall(r"^\d+\) .*$", text, flags=re.M) or text.strip().splitlines()
    for line in errors:
        print(f"        {line}")
if failed:
    print(f"{len(failed)} of {len(contracts)} contract(s) fail datacontract lint: "
          + " ".join(failed), file=sys.stderr)
    sys.exit(1)
print(f"all {len(contracts)} contract(s) pass datacontract lint")
PY
