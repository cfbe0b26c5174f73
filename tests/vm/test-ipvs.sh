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
top_builddir=$(cd "$top_builddir" 2>/dev/null && pwd) || {
	echo "Bail out! top_builddir $top_builddir does not exist"; exit 1; }
for f in proxy/kproxyd cli/kproxyctl; do
	[ -x "$top_builddir/$f" ] || { echo "Bail out! $top_builddir/$f is not built"; exit 1; }
done
"$here/run-in-guest" --timeout "${KPROXY_IPVS_TIMEOUT:-900}" -- \
	env top_builddir="$top_builddir" python3 "$here/test-ipvs.py"
rc=$?
case $rc in
0) ;;
124) echo "Bail out! the guest run timed out (run-in-guest status 124)" ;;
125) echo "Bail out! run-in-guest could not run the guest (status 125: see stderr)" ;;
*) echo "# test-ipvs.py in the guest exited with status $rc" ;;
esac
exit $rc
