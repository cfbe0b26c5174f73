#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Host-side entry of the IPVS data-plane test: runs tests/vm/test-ipvs.py as root inside
# a qemu guest (tests/vm/run-in-guest: the host kernel has no IPVS), prints the guest's
# TAP and exits with its status. No skip: a missing qemu, kernel or build fails (the
# harness's own failures are 124 = timeout and 125 = harness error).
#   top_builddir  build tree (make check sets it; default: ./ if it holds proxy/kproxyd,
#                 else the source tree's build/)
#   KPROXY_IPVS_TIMEOUT  seconds for the whole guest run (default 900)
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
if [ -z "${top_builddir:-}" ]; then
	if [ -x "$PWD/proxy/kproxyd" ]; then top_builddir=$PWD; else top_builddir=$src/build; fi
fi
abs=$(cd "$top_builddir" 2>/dev/null && pwd) || {
	echo "Bail out! top_builddir $top_builddir does not exist"; exit 1; }
top_builddir=$abs
for f in proxy/kproxyd cli/kproxyctl; do
	[ -x "$top_builddir/$f" ] || { echo "Bail out! $top_builddir/$f is not built"; exit 1; }
done
# bash reads a script as it runs it: a run-in-guest edited during the guest run (a
# checkout, a commit hook) fails with a syntax error and loses the guest's output. Run a
# private copy (the same content gives the same cached initrd).
rig=$(mktemp -d "${TMPDIR:-/tmp}/kp-ipvs-rig.XXXXXX") || { echo "Bail out! mktemp failed"; exit 1; }
trap 'rm -rf "$rig"' EXIT
cp "$here/run-in-guest" "$here/guest-init" "$rig/" ||
	{ echo "Bail out! cannot copy tests/vm/run-in-guest"; exit 1; }
"$rig/run-in-guest" --timeout "${KPROXY_IPVS_TIMEOUT:-900}" -- \
	env top_builddir="$top_builddir" ASAN_OPTIONS="${ASAN_OPTIONS:-}" \
	UBSAN_OPTIONS="${UBSAN_OPTIONS:-}" python3 "$here/test-ipvs.py"
rc=$?
case $rc in
0) ;;
124) echo "Bail out! the guest run timed out (run-in-guest status 124)" ;;
125) echo "Bail out! run-in-guest could not run the guest (status 125: see stderr)" ;;
*) echo "# test-ipvs.py in the guest exited with status $rc" ;;
esac
exit $rc
