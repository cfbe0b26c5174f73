#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Compares nftables rulesets in meaning, not in text.

parse(text) reads a ruleset in either of nft's two forms, `nft list table ...` output
(as nft 1.0.6 prints it) or a file of `add ...` commands (as kube-proxy's tests write
their expected rulesets, knftables' Fake.Dump()), into a canonical structure:

    {"table": (family, name) or None, "comment": str or None,
     "chains": {name: {"type", "hook", "priority" (a number), "policy", "comment",
                       "rules": [normalised rule, ...]}},
     "sets": {name: {"kind": "set" or "map", "type", "flags", "timeout" (seconds),
                     "size", "comment", ..., "elements": {normalised element, ...}}},
     "objects": {"counter NAME", ...}}

Chains keep their rules in order; sets and maps hold their elements as a set. What nft
prints back differently from what it was given is normalised on both sides:
priority names (dstnat - 10 == -110, filter == 0, srcnat == 100, dstnat == -100),
`policy accept` (a base chain's default), `mark` == `meta mark` and `and`/`or`/`xor` ==
`&`/`|`/`^`, hex constants (0x4000 == 0x00004000, 0 == 0x00000000), `dnat ip addr . port
to` == `dnat ip to` == `dnat to`, a one-element anonymous set `{ x }` == `x`, the order
of a multi-element anonymous set's members, blanks around braces and commas, timeouts
(10800s == 3h), an element's `expires`, and nft's default `size 65535` of dynamic sets.
Comments (table, chain, rule, set, element) are kept and compared.

compare(expected, actual) returns human-readable differences, empty when equal in
meaning; sections() gives the same grouped by object, for one TAP line each.
selfcheck(text) loads an `add ...` ruleset into a fresh network namespace with nft -f,
lists it back and compares the two: proof that the normaliser covers nft's listing.

CLI: nftcompare.py EXPECTED ACTUAL    differences, exit status 1 if any
     nftcompare.py --canon FILE       the canonical form
     nftcompare.py --selfcheck FILE   load, list back and compare (root)"""
import difflib
import itertools
import os
import re
import subprocess
import sys
import tempfile

PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50,
              "srcnat": 100}
DEFAULT_DYNAMIC_SIZE = "65535"      # nft 1.0.6 gives dynamic sets this size unasked
COMMENT_END = re.compile(r'\s*\bcomment\s+"((?:[^"\\]|\\.)*)"\s*$')
COMMENT_ANY = re.compile(r'\s*\bcomment\s+"((?:[^"\\]|\\.)*)"')
UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
NETNS_SEQ = itertools.count()


def split_top(text, sep):
    """Splits @text on @sep outside quotes and braces; strips and drops empty parts."""
    parts, cur, depth, quoted = [], [], 0, False
    for i, c in enumerate(text):
        if c == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and c == "{":
            depth += 1
        elif not quoted and c == "}":
            depth -= 1
        elif not quoted and depth == 0 and c == sep:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(c)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def braces(text):
    """The text between @text's first "{" and its matching "}" and what follows it,
    or None if @text has no complete brace block."""
    start = text.find("{")
    if start < 0:
        return None
    depth, quoted = 0, False
    for i in range(start, len(text)):
        c = text[i]
        if c == '"' and text[i - 1] != "\\":
            quoted = not quoted
        elif not quoted and c == "{":
            depth += 1
        elif not quoted and c == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i], text[i + 1:]
    return None


def seconds(text):
    """A duration such as 10800s, 3h or 1h30m as a number of seconds (text if not one)."""
    parts = re.findall(r"(\d+)(ms|d|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return text
    total = sum(int(n) * UNITS[u] for n, u in parts)
    return int(total) if total == int(total) else total


def priority(text):
    """dstnat - 10, -110, filter, srcnat + 5 ... as a number."""
    m = re.fullmatch(r"([a-z]+)?\s*([+-])?\s*(\d+)?", text.strip())
    if not m or (m.group(1) and m.group(1) not in PRIORITIES) or not (m.group(1) or m.group(3)):
        return text.strip()
    base = PRIORITIES[m.group(1)] if m.group(1) else 0
    off = int(m.group(3) or 0)
    return base - off if m.group(2) == "-" else base + off


def norm_expr(text):
    """Blanks, marks, hex, dnat forms and anonymous sets of a rule (or element) body."""
    s = " ".join(text.split())
    s = re.sub(r"\{\s*", "{ ", s)
    s = re.sub(r"\s*\}", " }", s)
    s = re.sub(r"\s*,\s*", ", ", s)
    s = re.sub(r"(?<![\w-])(?<!meta )(?<!ct )mark(?![\w-])", "meta mark", s)
    s = re.sub(r"\bmeta mark (and|or|xor) ",
               lambda m: "meta mark %s " % {"and": "&", "or": "|", "xor": "^"}[m.group(1)], s)
    s = re.sub(r"(?<![\w-])0x[0-9a-fA-F]+(?![\w-])",
               lambda m: "0x%x" % int(m.group(0), 16) if int(m.group(0), 16) else "0", s)
    s = re.sub(r"\b(dnat|snat) (?:ip6? )?(?:addr \. port )?to\b", r"\1 to", s)
    s = re.sub(r"\{ ([^\s,{}]+) \}", r"\1", s)
    # order of the members of an anonymous set or map (innermost braces only)
    return re.sub(r"\{ ([^{}]*, [^{}]*) \}",
                  lambda m: "{ %s }" % ", ".join(sorted(m.group(1).split(", "))), s)


def norm_rule(text):
    m = COMMENT_END.search(text)
    body = text[:m.start()] if m else text
    return norm_expr(body) + (' comment "%s"' % m.group(1) if m else "")


def norm_elem(text):
    m = COMMENT_ANY.search(text)
    comment = m.group(1) if m else None
    body = COMMENT_ANY.sub("", text)
    body = re.sub(r"\s+expires\s+\S+", "", body)
    body = re.sub(r"\btimeout\s+(\S+)", lambda t: "timeout %s" % seconds(t.group(1)), body)
    key, sep, value = body.partition(" : ")
    out = norm_expr(key)
    if comment is not None:
        out += ' comment "%s"' % comment
    return out + (" : " + norm_expr(value) if sep else "")


def new_ruleset():
    return {"table": None, "comment": None, "chains": {}, "sets": {}, "objects": set()}


def new_chain():
    return {"type": None, "hook": None, "priority": None, "policy": None, "comment": None,
            "rules": []}


def chain_stmt(chain, stmt):
    """One `type ... hook ... priority ...`, `policy ...` or `comment "..."` of a chain."""
    m = re.fullmatch(r"type (\S+) hook (\S+)(?: device \S+)? priority (.+)", stmt)
    if m:
        chain["type"], chain["hook"] = m.group(1), m.group(2)
        chain["priority"] = priority(m.group(3))
        if chain["policy"] is None:
            chain["policy"] = "accept"
        return True
    m = re.fullmatch(r"policy (\S+)", stmt)
    if m:
        chain["policy"] = m.group(1)
        return True
    m = COMMENT_END.fullmatch(stmt)
    if m:
        chain["comment"] = m.group(1)
        return True
    return False


def set_stmt(st, stmt):
    """One property (or `elements = { ... }`) of a set or map."""
    m = re.fullmatch(r"elements\s*=\s*(\{.*\})", stmt, re.S)
    if m:
        st["elements"] |= {norm_elem(e) for e in split_top(braces(m.group(1))[0], ",")}
        return
    m = COMMENT_END.fullmatch(stmt)
    if m:
        st["comment"] = m.group(1)
        return
    word, _, value = stmt.partition(" ")
    value = " ".join(value.split())
    if word == "flags":
        value = ",".join(sorted(f.strip() for f in value.split(",")))
    elif word == "timeout":
        value = seconds(value)
    st[word] = value if value else True


def finish_set(st):
    if st.get("size") == DEFAULT_DYNAMIC_SIZE and "dynamic" in str(st.get("flags", "")):
        del st["size"]


def parse_commands(text, rs):
    """`add ...` lines (also create, flush, delete) into @rs."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        w = line.split(None, 4)
        verb, what = w[0], w[1]
        if what == "table":
            rs["table"] = (w[2], w[3].split()[0])
            if verb in ("add", "create"):
                body = braces(line)
                for stmt in split_top(body[0], ";") if body else []:
                    m = COMMENT_END.fullmatch(stmt)
                    if m:
                        rs["comment"] = m.group(1)
            continue
        rest = w[4] if len(w) > 4 else ""
        name, _, tail = rest.partition(" ")
        if verb in ("add", "create") and what == "chain":
            chain = rs["chains"].setdefault(name, new_chain())
            body = braces(tail)
            for stmt in split_top(body[0], ";") if body else []:
                if not chain_stmt(chain, stmt):
                    raise ValueError("chain %s: cannot read %r" % (name, stmt))
        elif verb in ("add", "create") and what in ("set", "map"):
            st = rs["sets"].setdefault(name, {"kind": what, "elements": set()})
            body = braces(tail)
            for stmt in split_top(body[0], ";") if body else []:
                set_stmt(st, stmt)
            finish_set(st)
        elif verb in ("add", "insert") and what == "rule":
            rule = norm_rule(tail)
            chain = rs["chains"].setdefault(name, new_chain())
            if verb == "add":
                chain["rules"].append(rule)
            else:
                chain["rules"].insert(0, rule)
        elif what == "element" and verb in ("add", "create", "delete"):
            st = rs["sets"].setdefault(name, {"kind": "set", "elements": set()})
            elems = {norm_elem(e) for e in split_top(braces(tail)[0], ",")}
            st["elements"] = st["elements"] | elems if verb != "delete" \
                else st["elements"] - elems
        elif verb == "flush" and what == "chain":
            rs["chains"].setdefault(name, new_chain())["rules"] = []
        elif verb == "flush" and what in ("set", "map"):
            rs["sets"].setdefault(name, {"kind": what, "elements": set()})["elements"] = set()
        elif verb == "delete" and what == "chain":
            rs["chains"].pop(name, None)
        elif verb == "delete" and what in ("set", "map"):
            rs["sets"].pop(name, None)
        elif verb in ("add", "create") and what in ("counter", "quota", "limit"):
            rs["objects"].add("%s %s" % (what, name))
        elif verb == "delete" and what in ("counter", "quota", "limit"):
            rs["objects"].discard("%s %s" % (what, name))
        else:
            raise ValueError("cannot read command %r" % line)


def parse_listing(text, rs):
    """`nft list table|ruleset` output into @rs (the first table only)."""
    lines = iter(text.splitlines())
    block = None            # ("chain", dict) / ("set", dict) / ("other", None)
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if block is None:
            m = re.fullmatch(r"table (\S+) (\S+) \{", line)
            if m and rs["table"] is None:
                rs["table"] = (m.group(1), m.group(2))
                continue
            m = re.fullmatch(r"(chain|set|map) (\S+) \{", line)
            if m and m.group(1) == "chain":
                block = ("chain", rs["chains"].setdefault(m.group(2), new_chain()))
            elif m:
                block = ("set", rs["sets"].setdefault(m.group(2), {"kind": m.group(1),
                                                                    "elements": set()}))
            elif re.fullmatch(r"(\S+) (\S+) \{", line):
                kind, name = line.split()[:2]
                rs["objects"].add("%s %s" % (kind, name))
                block = ("other", None)
            elif COMMENT_END.fullmatch(line):
                rs["comment"] = COMMENT_END.fullmatch(line).group(1)
            elif line == "}":
                break       # end of the table
            elif not line.startswith("flags "):
                raise ValueError("cannot read table line %r" % line)
            continue
        if line == "}":
            if block[0] == "set":
                finish_set(block[1])
            block = None
        elif block[0] == "chain":
            stmts = split_top(line, ";")
            if line.startswith("type ") or line.startswith("policy ") or \
                    (COMMENT_END.fullmatch(line) and not block[1]["rules"]):
                for stmt in stmts:
                    if not chain_stmt(block[1], stmt):
                        raise ValueError("cannot read chain line %r" % line)
            else:
                block[1]["rules"].append(norm_rule(line))
        elif block[0] == "set":
            while line.startswith("elements") and braces(line) is None:
                more = next(lines, None)
                if more is None:
                    raise ValueError("set %s: elements not closed" % line)
                line += " " + more.strip()
            set_stmt(block[1], line)


def parse(text):
    """A ruleset's canonical structure, from `nft list` output or `add ...` commands."""
    rs = new_ruleset()
    first = next((l.split()[0] for l in text.splitlines()
                  if l.strip() and not l.strip().startswith("#")), "")
    if first == "table":
        parse_listing(text, rs)
    else:
        parse_commands(text, rs)
    return rs


def canon(rs):
    """The canonical structure as text, one object per paragraph, sorted."""
    out = ["table %s %s" % rs["table"] if rs["table"] else "table (none)",
           "  comment %r" % rs["comment"]]
    for name in sorted(rs["chains"]):
        c = rs["chains"][name]
        out.append("chain %s" % name)
        out += ["  %s %r" % (k, c[k]) for k in ("type", "hook", "priority", "policy", "comment")
                if c[k] is not None]
        out += ["  rule %s" % r for r in c["rules"]]
    for name in sorted(rs["sets"]):
        s = rs["sets"][name]
        out.append("%s %s" % (s["kind"], name))
        out += ["  %s %r" % (k, v) for k, v in sorted(s.items()) if k not in ("kind", "elements")]
        out += ["  element %s" % e for e in sorted(s["elements"])]
    out += ["object %s" % o for o in sorted(rs["objects"])]
    return "\n".join(out) + "\n"


def rule_diffs(title, ra, rb):
    """What differs between the rule lists @ra (expected) and @rb (actual)."""
    out = []
    sm = difflib.SequenceMatcher(None, ra, rb, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            a = ra[i1 + k] if i1 + k < i2 else None
            b = rb[j1 + k] if j1 + k < j2 else None
            if a is not None and b is not None:
                out.append("%s: rule %d differs: %s vs %s" % (title, i1 + k + 1, a, b))
            elif a is not None:
                out.append("%s: rule %d missing: %s" % (title, i1 + k + 1, a))
            else:
                out.append("%s: unexpected rule after rule %d: %s" % (title, i1, b))
    return out


def name_diffs(title, what, a, b):
    return (["%s: %s missing: %s" % (title, what, n) for n in sorted(set(a) - set(b))]
            + ["%s: unexpected %s: %s" % (title, what, n) for n in sorted(set(b) - set(a))])


def sections(a, b):
    """[(title, [differences])]: the table, the chain names, each of @a's chains, the
    set and map names, each of @a's sets and maps, other objects (counters ...); the
    same titles whatever @b holds. @a is the expected ruleset, @b the actual one."""
    out = []
    t = "table"
    d = []
    if a["table"] != b["table"]:
        d.append("%s: %s vs %s" % (t, a["table"], b["table"]))
    if a["comment"] != b["comment"]:
        d.append("%s: comment %r vs %r" % (t, a["comment"], b["comment"]))
    out.append((t, d))
    out.append(("chains", name_diffs("chains", "chain", a["chains"], b["chains"])))
    for name, ca in a["chains"].items():
        t = "chain " + name
        cb = b["chains"].get(name)
        if cb is None:
            out.append((t, ["%s: missing" % t]))
            continue
        d = ["%s: %s %r vs %r" % (t, k, ca[k], cb[k])
             for k in ("type", "hook", "priority", "policy", "comment") if ca[k] != cb[k]]
        out.append((t, d + rule_diffs(t, ca["rules"], cb["rules"])))
    out.append(("sets and maps", name_diffs("sets and maps", "set/map", a["sets"], b["sets"])))
    for name, sa in a["sets"].items():
        t = "%s %s" % (sa["kind"], name)
        sb = b["sets"].get(name)
        if sb is None:
            out.append((t, ["%s: missing" % t]))
            continue
        keys = sorted((set(sa) | set(sb)) - {"elements"})
        d = ["%s: %s %r vs %r" % (t, k, sa.get(k), sb.get(k)) for k in keys
             if sa.get(k) != sb.get(k)]
        d += ["%s: element missing: %s" % (t, e) for e in sorted(sa["elements"] - sb["elements"])]
        d += ["%s: unexpected element: %s" % (t, e)
              for e in sorted(sb["elements"] - sa["elements"])]
        out.append((t, d))
    out.append(("other objects", name_diffs("other objects", "object", a["objects"],
                                            b["objects"])))
    return out


def compare(a, b):
    """Differences between the expected ruleset @a and the actual @b; [] when they mean
    the same."""
    return [d for _, ds in sections(a, b) for d in ds]


def load_order(text):
    """@text's `add ...` commands in an order nft -f accepts: table, sets and maps,
    chains, rules, elements (kube-proxy's test lists a rule before the chain it names)."""
    rank = {"table": 0, "set": 1, "map": 1, "counter": 1, "chain": 2, "rule": 3, "element": 4}
    cmds = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    if cmds and cmds[0].startswith("table "):
        return text
    return "\n".join(sorted(cmds, key=lambda l: rank.get(l.split()[1], 5))) + "\n"


def run(*cmd, timeout=30):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def selfcheck(text):
    """Loads the `add ...` ruleset @text into a fresh network namespace, lists its table
    back and returns compare(parse(text), parse(listing)). Raises RuntimeError when nft
    cannot load or list it. Needs root, ip and nft."""
    want = parse(text)
    family, table = want["table"]
    ns = "kpgold-%d-%d" % (os.getpid(), next(NETNS_SEQ))
    r = run("ip", "netns", "add", ns)
    if r.returncode:
        raise RuntimeError("ip netns add %s: %s" % (ns, r.stderr.strip()))
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".nft") as f:
            f.write(load_order(text))
            f.flush()
            r = run("ip", "netns", "exec", ns, "nft", "-f", f.name)
            if r.returncode:
                raise RuntimeError("nft -f: %s" % r.stderr.strip()[-2000:])
        r = run("ip", "netns", "exec", ns, "nft", "list", "table", family, table)
        if r.returncode:
            raise RuntimeError("nft list table: %s" % r.stderr.strip())
        return compare(want, parse(r.stdout))
    finally:
        run("ip", "netns", "del", ns)


def main(argv):
    if len(argv) == 3 and argv[1] == "--canon":
        sys.stdout.write(canon(parse(open(argv[2]).read())))
        return 0
    if len(argv) == 3 and argv[1] == "--selfcheck":
        diffs = selfcheck(open(argv[2]).read())
    elif len(argv) == 3:
        diffs = compare(parse(open(argv[1]).read()), parse(open(argv[2]).read()))
    else:
        sys.stderr.write("usage: nftcompare.py EXPECTED ACTUAL | --canon FILE | "
                         "--selfcheck FILE\n")
        return 2
    for d in diffs:
        print(d)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
