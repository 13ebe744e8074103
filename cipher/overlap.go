package cipher

import "unsafe"

// inexactOverlap reports whether x and y share memory other than exactly (same
// start). In-place operation is allowed; a shifted overlap would corrupt the output.
func inexactOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 || &x[0] == &y[0] {
		return false
	}
	xs, ys := uintptr(unsafe.Pointer(&x[0])), uintptr(unsafe.Pointer(&y[0]))
	return xs < ys+uintptr(len(y)) && ys < xs+uintptr(len(x))
}
