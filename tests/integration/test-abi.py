#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The library's interface: each public header compiles alone as C and as C++,
libkproxy.so exports exactly the symbols named in lib/libkproxy.map (all kp_*),
and the embedding example, linked against libkproxy.so, computes the examples'
state through a backend of its own. Prints TAP."""
import os
import re
import subprocess
import sys
import tempfile

TOP_BUILD = os.environ.get("top_builddir", os.getcwd())
TOP_SRC = os.environ.get("top_srcdir", os.getcwd())
count = failed = 0


def ok(cond, desc, detail=""):
    global count, failed
    count += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (count, desc))
    if not cond:
        failed += 1
        for line in str(detail).splitlines()[:30]:
            print("#   " + line)
    return cond


def main():
    inc = os.path.join(TOP_SRC, "lib", "include")
    for h in sorted(os.listdir(os.path.join(inc, "kproxy"))):
        for lang, cc in (("c", "cc"), ("c++", "c++")):
            with tempfile.NamedTemporaryFile(suffix=".c" if lang == "c" else ".cc",
                                             mode="w") as f:
                f.write("#include <kproxy/%s>\nint kp_test_unit_;\n" % h)
                f.flush()
                std = "-std=c11" if lang == "c" else "-std=c++17"
                r = subprocess.run([cc, std, "-Wall", "-Wextra", "-Werror", "-pedantic",
                                    "-I", inc, "-fsyntax-only", f.name],
                                   capture_output=True, text=True)
                ok(r.returncode == 0, "kproxy/%s compiles alone as %s" % (h, lang), r.stderr)

    so = os.path.join(TOP_BUILD, "lib", ".libs", "libkproxy.so")
    r = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True)
    exported = sorted(l.split()[-1].split("@")[0] for l in r.stdout.splitlines() if l.split()[1] in "TDBR")
    with open(os.path.join(TOP_SRC, "lib", "libkproxy.map")) as f:
        mapped = sorted(re.findall(r"^\s+(kp_[a-z0-9_]+);", f.read(), re.M))
    ok(r.returncode == 0 and exported == mapped,
       "libkproxy.so exports exactly the map's %d symbols" % len(mapped),
       "only exported: %s\nonly in map: %s" % (sorted(set(exported) - set(mapped)),
                                              sorted(set(mapped) - set(exported))))
    ok(all(s.startswith("kp_") for s in exported), "every export is kp_*")

    embed = os.path.join(TOP_BUILD, "examples", "embed")
    mdir = os.path.join(TOP_SRC, "examples", "manifests")
    files = sorted(os.path.join(mdir, f) for f in
                   (os.listdir(mdir) if os.path.isdir(mdir) else [])
                   if f.endswith((".json", ".yaml", ".yml")))
    if not ok(files, "examples/manifests holds manifests"):
        files = ["/nonexistent"]
    r = subprocess.run([embed, "node-a", *files], capture_output=True, text=True, timeout=30)
    ok(r.returncode == 0 and r.stderr == "", "examples/embed runs on the example manifests",
       r.stderr)
    ok("add demo/web:http/TCP" in r.stdout and "(full)" in r.stdout,
       "its backend gets the first, full delta", r.stdout)
    ok(re.search(r"^ClusterIP 10\.96\.10\.10:80 demo/web -> 10\.244\.1\.2:8080 "
                 r"10\.244\.2\.3:8080 10\.244\.2\.4:8080$", r.stdout, re.M) is not None,
       "and reads the state through the public getters", r.stdout)
    r = subprocess.run([embed, "node-a", "-o", "title=resync", "-o", "state=false", *files],
                       capture_output=True, text=True, timeout=30)
    ok(r.returncode == 0 and "# resync: " in r.stdout and "# state" not in r.stdout,
       "its own option table: the settings reach its init, typed", r.stdout + r.stderr)
    r = subprocess.run([embed, "node-a", "-o", "state=perhaps", *files],
                       capture_output=True, text=True, timeout=30)
    ok(r.returncode == 2 and 'option "state": "perhaps" is not true or false' in r.stderr,
       "a bad value of its option is refused by the library, by name", r.stderr)
    r = subprocess.run([embed, "node-a", "-o", "colour=red", *files],
                       capture_output=True, text=True, timeout=30)
    ok(r.returncode == 2 and 'no option "colour"' in r.stderr,
       "an option it does not declare is refused by name", r.stderr)
    print("# %d passed, %d failed" % (count - failed, failed))
    print("1..%d" % count)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
