#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# TAP test for tests/vm/run-in-guest. Boots several guests; in make check. Run as root:
# tests/vm/test-run-in-guest.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
rig=$here/run-in-guest
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# 1-4: kernel version, IPVS, writable /tmp, exit status
"$rig" -- sh -c 'uname -r; modprobe ip_vs && cat /proc/net/ip_vs; echo hi > /tmp/x; cat /tmp/x; exit 3' \
	>"$tmp/out" 2>"$tmp/err"; rc=$?
check "exit status 3 propagated (got $rc)" [ "$rc" = 3 ]
check "guest kernel has IPVS modules ($(head -n1 "$tmp/out"))" \
	[ -n "$(find "/lib/modules/$(head -n1 "$tmp/out")/kernel/net/netfilter/ipvs" -name 'ip_vs.ko*' 2>/dev/null)" ]
check "/proc/net/ip_vs header printed" grep -q '^IP Virtual Server version' "$tmp/out"
check "writable /tmp in guest" grep -qx hi "$tmp/out"

# 5-6: lots of output on stdout, stderr kept apart
"$rig" -- sh -c 'seq 1 200000; echo to-stderr >&2' >"$tmp/out" 2>"$tmp/err"; rc=$?
check "200000 lines of stdout intact (rc=$rc)" \
	[ "$rc" = 0 ] && [ "$(wc -l < "$tmp/out")" = 200000 ] && [ "$(tail -n1 "$tmp/out")" = 200000 ]
check "stderr returned separately" grep -qx to-stderr "$tmp/err"

# 7: argument quoting survives the trip
# shellcheck disable=SC2016
"$rig" -- printf '<%s>' 'a b' "c'd" '$x' >"$tmp/out" 2>"$tmp/err"
check "arguments passed verbatim" [ "$(cat "$tmp/out")" = "<a b><c'd><\$x>" ]

# 8: network namespaces work
"$rig" -- sh -c 'ip netns add x && ip netns exec x ip link show lo && ip netns del x' \
	>"$tmp/out" 2>"$tmp/err"; rc=$?
check "ip netns add works in guest (rc=$rc)" [ "$rc" = 0 ]

# 9: kernel module autoload (ipvsadm needs ip_vs + ip_vs_rr on demand)
if command -v ipvsadm >/dev/null; then
	"$rig" -- sh -c 'ipvsadm -A -t 10.0.0.1:80 -s rr && ipvsadm -Ln' >"$tmp/out" 2>"$tmp/err"
	check "ipvsadm with module autoload" grep -q '10.0.0.1:80 rr' "$tmp/out"
else
	ok "ipvsadm with module autoload # SKIP ipvsadm not installed"
fi

# 10-11: read-only host root
"$rig" -- sh -c 'touch /kproxy-vm-rw-probe' >/dev/null 2>&1; rc=$?
check "host root is read-only in guest" [ "$rc" != 0 ] && [ ! -e /kproxy-vm-rw-probe ]
"$rig" -- sh -c "test -x '$here/run-in-guest'" >/dev/null 2>&1
check "host files visible at the same paths" [ $? = 0 ]

# 12-13: timeout
t0=$(date +%s)
"$rig" --timeout 20 -- sleep 100 >"$tmp/out" 2>"$tmp/err" & rpid=$!
wait $rpid; rc=$?
dt=$(( $(date +%s) - t0 ))
check "timeout exits 124 (got $rc) within 25s (took ${dt}s)" [ "$rc" = 124 ] && [ "$dt" -le 25 ]
check "timeout message printed" grep -q 'TIMEOUT' "$tmp/err"

# 14-15: a host directory under /tmp that the command names is visible (read-only) over
# the guest's fresh /tmp, as a checkout in /tmp needs
shared=$(mktemp -d /tmp/kp-rig-share.XXXXXX)
echo shared-content > "$shared/f"
(cd "$shared" && "$rig" -- sh -c 'cat f; touch f2 2>/dev/null && echo WRITABLE') \
	>"$tmp/out" 2>"$tmp/err"
check "a host directory under /tmp named by the working directory is visible" \
	grep -qx shared-content "$tmp/out"
check "and read-only" [ ! -e "$shared/f2" ] && ! grep -q WRITABLE "$tmp/out"
rm -rf "$shared"

# 16: the timed-out run left no qemu behind (qemu is named after its run-in-guest's PID;
# other guests may be running side by side)
check "no qemu process left" [ -z "$(pgrep -f "qemu-system-x86_64 .*-name kproxy-vm-$rpid ")" ]

echo "# $((n - failed)) passed, $failed failed"
echo "1..$n"
[ "$failed" = 0 ]
