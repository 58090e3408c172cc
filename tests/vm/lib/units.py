#!/usr/bin/env python3
"""tests/vm/lib/units.py - where the data of remapped units lives (issue 11).

    units.py LIST.json ORIGIN SPARE DEVICE PATTERN-BYTE [MIN-WRITTEN]

LIST.json is `remapctl list --json` of the running server.  For every
mapped unit U -> spare unit S:
  * the exported device's unit U equals the spare's unit S (the data is on
    the spare), and
  * the origin's unit U still holds PATTERN-BYTE in every byte (the origin
    was filled with it before the server started and never written there).
At least MIN-WRITTEN (default 1) of those units must hold something other
than the pattern on the device, else the check proved nothing.
Exit 0 if all hold, 1 otherwise; a summary line on stdout.
"""

import json
import sys


def read_at(f, off, n):
    f.seek(off)
    b = f.read(n)
    if len(b) != n:
        raise SystemExit(f"units.py: short read of {n} bytes at {off} from {f.name}")
    return b


def main():
    if len(sys.argv) not in (6, 7):
        raise SystemExit(__doc__)
    lst, origin, spare, dev = sys.argv[1:5]
    pattern = int(sys.argv[5], 0)
    min_written = int(sys.argv[6]) if len(sys.argv) == 7 else 1
    with open(lst) as f:
        table = json.load(f)
    unit = table["unit"]
    pat = bytes([pattern]) * unit
    bad = 0
    written = 0
    mapped = 0
    with open(origin, "rb") as fo, open(spare, "rb") as fs, open(dev, "rb") as fd:
        for e in table["entries"]:
            if e["state"] != "mapped":
                continue
            mapped += 1
            u, s = e["origin_unit"], e["spare_unit"]
            d = read_at(fd, u * unit, unit)
            if d != read_at(fs, s * unit, unit):
                print(f"unit {u}: the device's data is not spare unit {s}'s")
                bad += 1
            if read_at(fo, u * unit, unit) != pat:
                print(f"unit {u}: the origin's bytes changed under a remapped unit")
                bad += 1
            if d != pat:
                written += 1
    verdict = ("data on the spare, origin unchanged" if bad == 0
               else f"{bad} problems")
    print(f"{mapped} mapped units checked: {verdict}; "
          f"{written} of them written by the guest")
    if bad or written < min_written:
        if not bad:
            print(f"only {written} remapped units were written (need {min_written})")
        sys.exit(1)


main()
