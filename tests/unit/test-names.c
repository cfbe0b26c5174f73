// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Chain names: SHA-256 against FIPS 180-4 vectors, and kp_chain_name() against the names
 * in kube-proxy's own golden test (TestOverallIPTablesRules), so a service gets the same
 * KUBE-SVC-/KUBE-SEP- chains under either proxy.
 */
#include "tap.h"
#include "../../backends/iptables/names.h"

static const char *hex(const uint8_t *d)
{
	static char out[65];

	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
	return out;
}

int main(void)
{
	static const struct {
		const char *prefix, *input, *want;
	} names[] = {
		{ "KUBE-SVC-", "ns1/svc1:p80tcp", "KUBE-SVC-XPGD46QRK7WJZT7O" },
		{ "KUBE-SEP-", "ns1/svc1:p80tcp10.180.0.1:80", "KUBE-SEP-SXIVWICOYRO3J4NJ" },
		{ "KUBE-SEP-", "ns5/svc5:p80tcp10.180.0.3:80", "KUBE-SEP-I77PXRDZVX7PMWMN" },
	};
	uint8_t d[32];
	char big[1000];
	char name[KP_CHAIN_NAME_SIZE];

	kp_sha256("", 0, d);
	is_str(hex(d), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	       "sha256 of the empty string");
	kp_sha256("abc", 3, d);
	is_str(hex(d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "sha256(abc)");
	kp_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, d);
	is_str(hex(d), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
	       "sha256 of the 56-byte vector (padding spills into a second block)");
	memset(big, 'a', sizeof(big));
	kp_sha256(big, sizeof(big), d);
	is_str(hex(d), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3",
	       "sha256 of 1000 'a's (several blocks)");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		kp_chain_name(name, names[i].prefix, names[i].input);
		is_str(name, names[i].want, "kube-proxy's name for %s", names[i].input);
	}
	return tap_done();
}
