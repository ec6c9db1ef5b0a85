#!/usr/bin/env python3
"""Check a creditphone settlement file (API.md section 15), CSV or JSON, the way a provider's
settlement system should before loading it: its SHA-256 against the ETag or the settlement.ready
notice, both roll-forward identities, and the totals against the rows.

    docs/examples/check_settlement.py settlement-2027-03-01-wld.csv [expected-sha256]
    curl -sS -H "Authorization: Bearer $KEY" -H "Accept: text/csv" \\
         "$URL/v1/providers/wld/settlement/2027-03-01" -o file.csv && docs/examples/check_settlement.py file.csv

Exits 0 when the file proves itself, 1 (with the reasons) when it does not. Standard library only.
"""
import csv
import hashlib
import io
import json
import sys
from decimal import Decimal

KINDS = ["hold_placed", "hold_confirmed", "hold_released", "hold_converted", "hold_voided", "debt_repayment"]


def from_csv(text):
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    movements = [r for r in rows if r["kind"] in KINDS]
    totals = {r["kind"][len("total_"):]: r for r in rows if r["kind"].startswith("total_")}
    balance = {r["kind"]: Decimal(r["amount"]) for r in rows if r["kind"].startswith(("opening_", "closing_"))}
    payables = [r for r in rows if r["kind"] == "payable"]
    return movements, {k: (Decimal(t["amount"]), int(t["count"])) for k, t in totals.items()}, balance, payables


def from_json(text):
    f = json.loads(text)
    totals = {k: (Decimal(t["amount"]), t["count"]) for k, t in f["totals"].items()}
    balance = {f"{side}_{what}": Decimal(f[side][what]) for side in ("opening", "closing") for what in ("held", "drawn")}
    return f["movements"], totals, balance, f["payables"]


def check(data, expected_sha=None):
    problems = []
    if expected_sha and hashlib.sha256(data).hexdigest() != expected_sha.strip('"'):
        problems.append("the file's SHA-256 is not the one announced")
    text = data.decode("utf-8")
    movements, totals, b, payables = (from_json if text.lstrip().startswith("{") else from_csv)(text)
    for kind in KINDS:
        rows = [m for m in movements if m["kind"] == kind]
        amount = sum((Decimal(m["amount"]) for m in rows), Decimal("0"))
        if totals.get(kind) != (amount, len(rows)):
            problems.append(f"total_{kind} is {totals.get(kind)}, the rows add up to {(amount, len(rows))}")
    t = {k: v[0] for k, v in totals.items()}
    held = b["opening_held"] + t["hold_placed"] - t["hold_released"] - t["hold_converted"] - t["hold_voided"]
    if held != b["closing_held"]:
        problems.append(f"closing held {b['closing_held']} != opening + placed - released - converted - voided = {held}")
    drawn = b["opening_drawn"] + t["hold_converted"] - t["debt_repayment"]
    if drawn != b["closing_drawn"]:
        problems.append(f"closing drawn {b['closing_drawn']} != opening + converted - debt repayments = {drawn}")
    owed = sum((Decimal(p["amount"]) for p in payables), Decimal("0"))
    if owed != t["hold_converted"]:
        problems.append(f"payables add up to {owed}, the conversions to {t['hold_converted']}")
    return problems


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    with open(sys.argv[1], "rb") as fh:
        found = check(fh.read(), sys.argv[2] if len(sys.argv) == 3 else None)
    for p in found:
        print("settlement file:", p, file=sys.stderr)
    print("settlement file: ok" if not found else "settlement file: REJECTED")
    sys.exit(1 if found else 0)
