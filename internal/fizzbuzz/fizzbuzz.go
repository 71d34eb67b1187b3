// Package fizzbuzz is the FizzBuzz classification and the closed form of the
// counts a complete stream of values 1..n produces. It is a leaf package
// shared by the pod's logger (internal/pod) and the in-process pipeline
// (the actors runtime's test bed in internal/robust).
package fizzbuzz

// Category is FizzBuzz's classification of a value.
type Category uint8

const (
	Plain Category = iota
	Fizz
	Buzz
	FizzBuzz
)

func (c Category) String() string {
	switch c {
	case Plain:
		return "value"
	case Fizz:
		return "fizz"
	case Buzz:
		return "buzz"
	case FizzBuzz:
		return "fizzbuzz"
	}
	return "category(?)"
}

// Classify is FizzBuzz: 15 → FizzBuzz, 3 → Fizz, 5 → Buzz, else the value.
func Classify(v uint64) Category {
	switch {
	case v%15 == 0:
		return FizzBuzz
	case v%3 == 0:
		return Fizz
	case v%5 == 0:
		return Buzz
	}
	return Plain
}

// Counts are the counts of a set of values: how many, how many in each
// category, and the sum of the plain ones.
type Counts struct {
	Count, Fizz, Buzz, FizzBuzz, Plain, PlainSum uint64
}

// tri is 1 + 2 + ... + k.
func tri(k uint64) uint64 { return k * (k + 1) / 2 }

// Expected returns the counts for values 1..n, minus the excluded values:
// the closed form ⌊n/15⌋, ⌊n/3⌋−⌊n/15⌋, ⌊n/5⌋−⌊n/15⌋, and the sum of 1..n
// without the multiples of 3 or 5, less each excluded value's contribution.
// The excluded values must be distinct and in 1..n (callers filter); they
// are not checked.
func Expected(n uint64, excluded []uint64) Counts {
	e := Counts{
		Count:    n,
		FizzBuzz: n / 15,
		Fizz:     n/3 - n/15,
		Buzz:     n/5 - n/15,
		Plain:    n - n/3 - n/5 + n/15,
		PlainSum: tri(n) - 3*tri(n/3) - 5*tri(n/5) + 15*tri(n/15),
	}
	for _, v := range excluded {
		e.Count--
		switch Classify(v) {
		case Fizz:
			e.Fizz--
		case Buzz:
			e.Buzz--
		case FizzBuzz:
			e.FizzBuzz--
		default:
			e.Plain--
			e.PlainSum -= v
		}
	}
	return e
}

// Add counts one value.
func (c *Counts) Add(v uint64) {
	c.Count++
	switch Classify(v) {
	case Fizz:
		c.Fizz++
	case Buzz:
		c.Buzz++
	case FizzBuzz:
		c.FizzBuzz++
	default:
		c.Plain++
		c.PlainSum += v
	}
}

// Merge adds the counts of o.
func (c *Counts) Merge(o Counts) {
	c.Count += o.Count
	c.Fizz += o.Fizz
	c.Buzz += o.Buzz
	c.FizzBuzz += o.FizzBuzz
	c.Plain += o.Plain
	c.PlainSum += o.PlainSum
}
