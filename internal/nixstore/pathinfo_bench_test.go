package nixstore

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkDecodePathInfo reads what `nix path-info --recursive --json`
// prints for a closure of 10,000 paths (Nix 2.8's list, five references
// each): what push --closure decodes after the one Nix call it makes.
func BenchmarkDecodePathInfo(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := range 10000 {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"path":"/nix/store/%032d-pkg-%d","narHash":"sha256:%052d","narSize":%d,"references":[`, i, i, i, 1000+i)
		for r := range 5 {
			if r > 0 {
				buf.WriteByte(',')
			}
			fmt.Fprintf(&buf, `"/nix/store/%032d-pkg-%d"`, (i+r)%10000, (i+r)%10000)
		}
		fmt.Fprintf(&buf, `],"deriver":"/nix/store/%032d-pkg-%d.drv","registrationTime":1700000000,"signatures":["cache.example.org-1:%088d"]}`, i, i, i)
	}
	buf.WriteByte(']')
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := decodePathInfo(bytes.NewReader(buf.Bytes()))
		if err != nil || len(out) != 10000 {
			b.Fatal(err, len(out))
		}
	}
}
