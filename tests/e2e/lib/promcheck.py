#!/usr/bin/env python3
"""Strict checker of the Prometheus text exposition format (version 0.0.4)
as node_exporter's textfile collector reads it.

    promcheck.py [--require-label NAME]... < FILE

Exit 0 and print the parsed families as JSON on stdout; exit 1 and print
every problem (with its line number) on stderr.  Checks: every line ends in
a newline; HELP and TYPE at most once per family and before its samples;
a known TYPE; metric and label names of the allowed characters; label
values quoted with only the escapes \\\\ \\" \\n and valid UTF-8; HELP text
with only \\\\ and \\n escapes; a float value; no timestamp (the textfile
collector rejects them); a family's samples contiguous; no series twice;
counters named *_total; every sample carries the --require-label labels.
Stricter than Prometheus in two ways, on purpose: no blank lines and no
sample without a TYPE.
"""
import json
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?Inf|NaN")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class Bad(Exception):
    pass


def unescape(s, allowed):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s) or s[i + 1] not in allowed:
                raise Bad("bad escape %r" % s[i:i + 2])
            out.append({"\\": "\\", '"': '"', "n": "\n"}[s[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_labels(s, i):
    """s[i] == '{'; returns (dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if s[i:i + 1] == "}":
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            raise Bad("bad label name at column %d" % (i + 1))
        name = m.group(0)
        if name.startswith("__"):
            raise Bad("label name %s is reserved" % name)
        i = m.end()
        if s[i:i + 2] != '="':
            raise Bad('label %s: want ="' % name)
        i += 2
        j = i
        while j < len(s) and s[j] != '"':
            j += 2 if s[j] == "\\" else 1
        if j >= len(s):
            raise Bad("label %s: unterminated value" % name)
        if name in labels:
            raise Bad("label %s twice" % name)
        labels[name] = unescape(s[i:j], '\\"n')
        i = j + 1
        if s[i:i + 1] == ",":
            i += 1
        elif s[i:i + 1] != "}":
            raise Bad("label %s: want , or } after the value" % name)


def family_of(name, types):
    if name in types:
        return name
    for suffix in ("_bucket", "_count", "_sum"):
        base = name[:-len(suffix)] if name.endswith(suffix) else None
        if base and types.get(base) in ("histogram", "summary"):
            return base
    return name


def check(data, required):
    errors = []
    fams = {}
    types, helps = {}, {}
    done = set()          # families whose samples are over
    current = None
    seen = set()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, ["not UTF-8: %s" % e]
    if text and not text.endswith("\n"):
        errors.append("the last line has no newline")
    for n, line in enumerate(text.split("\n")[:-1] if text else [], 1):
        try:
            if line == "" or line.strip() == "":
                raise Bad("blank line")
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    kw, name = parts[1], parts[2]
                    if not NAME.fullmatch(name):
                        raise Bad("bad metric name %r" % name)
                    if name in done or (current and current != name
                                        and name in fams):
                        raise Bad("%s %s after its samples" % (kw, name))
                    if kw == "HELP":
                        if name in helps:
                            raise Bad("HELP %s twice" % name)
                        helps[name] = unescape(parts[3] if len(parts) > 3
                                               else "", "\\n")
                    else:
                        t = parts[3] if len(parts) > 3 else ""
                        if t not in TYPES:
                            raise Bad("TYPE %s: unknown type %r" % (name, t))
                        if name in types:
                            raise Bad("TYPE %s twice" % name)
                        if name in fams:
                            raise Bad("TYPE %s after its samples" % name)
                        types[name] = t
                        if t == "counter" and not name.endswith("_total"):
                            raise Bad("counter %s: name must end in _total"
                                      % name)
                    if current and current != name:
                        done.add(current)
                    current = name
                continue
            m = NAME.match(line)
            if not m:
                raise Bad("bad metric name")
            name, i = m.group(0), m.end()
            labels = {}
            if line[i:i + 1] == "{":
                labels, i = parse_labels(line, i)
            rest = line[i:]
            if not rest.startswith(" ") and not rest.startswith("\t"):
                raise Bad("want a space before the value")
            fields = rest.split()
            if len(fields) != 1:
                raise Bad("want one value and no timestamp, got %r" % rest)
            if not FLOAT.fullmatch(fields[0]):
                raise Bad("bad value %r" % fields[0])
            fam = family_of(name, types)
            if fam not in types:
                raise Bad("sample of %s without a TYPE line" % name)
            if fam in done:
                raise Bad("sample of %s apart from its family" % name)
            if current and current != fam:
                done.add(current)
            current = fam
            key = (name, tuple(sorted(labels.items())))
            if key in seen:
                raise Bad("series %s%s twice" % (name, labels))
            seen.add(key)
            for r in required:
                if r not in labels:
                    raise Bad("sample of %s lacks label %s" % (name, r))
            f = fams.setdefault(fam, {"type": types[fam],
                                      "help": helps.get(fam),
                                      "samples": []})
            f["samples"].append({"name": name, "labels": labels,
                                 "value": float(fields[0])})
        except (Bad, IndexError) as e:
            errors.append("line %d: %s: %s" % (n, e, line[:120]))
    for name in types:
        if name not in fams:
            errors.append("family %s has a TYPE but no sample" % name)
    for name in helps:
        if name not in types:
            errors.append("family %s has a HELP but no TYPE" % name)
    return fams, errors


def main():
    required = []
    args = sys.argv[1:]
    while args:
        if args[0] == "--require-label" and len(args) > 1:
            required.append(args[1])
            args = args[2:]
        else:
            print("usage: promcheck.py [--require-label NAME]... < FILE",
                  file=sys.stderr)
            return 2
    fams, errors = check(sys.stdin.buffer.read(), required)
    if errors:
        for e in errors:
            print("promcheck: " + e, file=sys.stderr)
        return 1
    json.dump(fams, sys.stdout, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
