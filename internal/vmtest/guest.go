package vmtest

import (
	"os"
	"slices"
	"strings"
)

// InGuest reports whether this process runs inside the lab's guest (the
// guest's jobs set CRYPTVOL_LAB=guest).
func InGuest() bool { return os.Getenv("CRYPTVOL_LAB") == "guest" }

// selectedSuites are the suites TestLab runs: CRYPTVOL_LAB_SUITES (a comma
// list of names) if set, else all with CRYPTVOL_LAB=full, else those not
// marked Full.
func selectedSuites() []Suite {
	var out []Suite
	names := strings.Split(os.Getenv("CRYPTVOL_LAB_SUITES"), ",")
	for _, s := range Suites {
		switch {
		case os.Getenv("CRYPTVOL_LAB_SUITES") != "":
			if slices.Contains(names, s.Name) {
				out = append(out, s)
			}
		case os.Getenv("CRYPTVOL_LAB") == "full" || !s.Full:
			out = append(out, s)
		}
	}
	return out
}
