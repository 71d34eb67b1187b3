package pod

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	l := newLogLimiter(time.Second)
	t0 := time.Unix(1000, 0)
	if n, ok := l.allow("a", t0); !ok || n != 0 {
		t.Fatal("first line held back")
	}
	for i := range 1000 {
		if _, ok := l.allow("a", t0.Add(time.Duration(i)*time.Millisecond)); ok {
			t.Fatalf("line %d within the interval let through", i)
		}
	}
	if _, ok := l.allow("b", t0); !ok {
		t.Fatal("another key held back")
	}
	if n, ok := l.allow("a", t0.Add(time.Second)); !ok || n != 1000 {
		t.Fatalf("after the interval: %d %v, want 1000 true", n, ok)
	}
	if n, ok := l.allow("a", t0.Add(3*time.Second)); !ok || n != 0 {
		t.Fatalf("quiet key: %d %v", n, ok)
	}
}
