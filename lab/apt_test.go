package lab

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseURIs(t *testing.T) {
	out := "Reading package lists...\n" +
		"'http://deb.debian.org/debian/pool/main/i/iptables-persistent/iptables-persistent_1.0.20_all.deb' iptables-persistent_1.0.20_all.deb 9000 SHA256:55cc\n" +
		"'http://deb.debian.org/debian/pool/main/s/sudo/sudo_1.9.13p3-1%2bdeb12u4_amd64.deb' sudo_1.9.13p3-1+deb12u4_amd64.deb 1890344 SHA256:aa\n" +
		"'http://x/pool/main/e/epoch/epoch_1%3a2.0-1_all.deb' epoch_1%3a2.0-1_all.deb 10 SHA256:bb\n"
	want := []deb{
		{"iptables-persistent_1.0.20_all.deb", "iptables-persistent", "1.0.20"},
		{"sudo_1.9.13p3-1+deb12u4_amd64.deb", "sudo", "1.9.13p3-1+deb12u4"},
		{"epoch_1%3a2.0-1_all.deb", "epoch", "1:2.0-1"},
	}
	if diff := cmp.Diff(want, parseURIs([]byte(out)), cmp.AllowUnexported(deb{})); diff != "" {
		t.Errorf("parseURIs (-want +got):\n%s", diff)
	}
}
