package fizzbuzz

import (
	"fmt"
	"slices"
	"testing"
)

func TestClassify(t *testing.T) {
	for v, want := range map[uint64]Category{
		0: FizzBuzz, 1: Plain, 2: Plain, 3: Fizz, 5: Buzz, 7: Plain, 9: Fizz,
		10: Buzz, 14: Plain, 15: FizzBuzz, 30: FizzBuzz, 45: FizzBuzz,
		1<<64 - 1: FizzBuzz, // 2^64-1 = 3·5·17·257·641·65537·6700417
	} {
		if got := Classify(v); got != want {
			t.Errorf("Classify(%d) = %v, want %v", v, got, want)
		}
	}
}

func TestCategoryString(t *testing.T) {
	for c, want := range map[Category]string{Plain: "value", Fizz: "fizz", Buzz: "buzz", FizzBuzz: "fizzbuzz", 4: "category(?)"} {
		if got := c.String(); got != want {
			t.Errorf("Category(%d).String() = %q, want %q", uint8(c), got, want)
		}
	}
}

// naive counts 1..n without the excluded values, one value at a time.
func naive(n uint64, excluded []uint64) Counts {
	var c Counts
	for v := uint64(1); v <= n; v++ {
		if slices.Contains(excluded, v) {
			continue
		}
		c.Count++
		switch v % 15 {
		case 0:
			c.FizzBuzz++
		case 3, 6, 9, 12:
			c.Fizz++
		case 5, 10:
			c.Buzz++
		default:
			c.Plain++
			c.PlainSum += v
		}
	}
	return c
}

// TestExpectedMatchesNaive checks the closed form against a brute-force
// count, with and without exclusions.
func TestExpectedMatchesNaive(t *testing.T) {
	ns := []uint64{0, 1, 2, 3, 4, 5, 6, 14, 15, 16, 29, 30, 31, 44, 45, 46, 99, 100, 101, 1000, 1234, 4999}
	for n := uint64(0); n <= 120; n++ {
		ns = append(ns, n)
	}
	for _, n := range ns {
		for _, ex := range [][]uint64{
			nil,
			{1},
			{3, 5, 15, 7},
			{15, 30, 45},
			{2, 4, 8, 16, 32, 64, 128, 256, 512},
			{999, 1000},
			{333, 1},
		} {
			// Keep only the distinct values in 1..n: Expected's contract.
			var in []uint64
			for _, v := range ex {
				if v >= 1 && v <= n && !slices.Contains(in, v) {
					in = append(in, v)
				}
			}
			t.Run(fmt.Sprintf("n=%d/excl=%v", n, in), func(t *testing.T) {
				if got, want := Expected(n, in), naive(n, in); got != want {
					t.Fatalf("Expected(%d, %v) = %+v, naive %+v", n, in, got, want)
				}
			})
		}
	}
}

// TestExpectedAllExcluded excludes every value: everything is zero.
func TestExpectedAllExcluded(t *testing.T) {
	for _, n := range []uint64{0, 1, 14, 15, 16, 100} {
		var all []uint64
		for v := uint64(1); v <= n; v++ {
			all = append(all, v)
		}
		if got := Expected(n, all); got != (Counts{}) {
			t.Errorf("Expected(%d, 1..%d) = %+v, want zero", n, n, got)
		}
	}
}

// TestExpectedLarge checks the closed form at a size brute force cannot
// reach, against sums computed per residue class.
func TestExpectedLarge(t *testing.T) {
	const n = 1_000_000_000
	e := Expected(n, nil)
	// n = 15·66666666 + 10: 66666666 full blocks, then 1..10 of the next.
	const blocks = n / 15
	var want Counts
	want.Count = n
	want.FizzBuzz = blocks
	want.Fizz = 4*blocks + 3 // 3, 6, 9 of the tail
	want.Buzz = 2*blocks + 2 // 5, 10 of the tail
	want.Plain = n - want.FizzBuzz - want.Fizz - want.Buzz
	// Plain residues r ∈ {1,2,4,7,8,11,13,14}: Σ over blocks k of (15k + r).
	residues := []uint64{1, 2, 4, 7, 8, 11, 13, 14}
	var rsum uint64
	for _, r := range residues {
		rsum += r
	}
	want.PlainSum = 15*uint64(len(residues))*(blocks*(blocks-1)/2) + blocks*rsum
	for _, r := range []uint64{1, 2, 4, 7, 8} { // the tail's plain values
		want.PlainSum += 15*blocks + r
	}
	if e != want {
		t.Fatalf("Expected(%d) = %+v, want %+v", n, e, want)
	}
}
