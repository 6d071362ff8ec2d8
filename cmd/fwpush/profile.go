package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// startProfiles writes pprof profiles of this process for make bench's
// profiling: the CPU profile to $FWPUSH_CPUPROFILE, the allocations to
// $FWPUSH_MEMPROFILE when it ends. It returns what stops them; nil when
// neither is set.
func startProfiles() func() {
	cpu, mem := os.Getenv("FWPUSH_CPUPROFILE"), os.Getenv("FWPUSH_MEMPROFILE")
	if cpu == "" && mem == "" {
		return nil
	}
	var stops []func()
	if cpu != "" {
		f, err := os.Create(cpu)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fwpush: cpu profile:", err)
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if mem != "" {
		runtime.MemProfileRate = 4096
		stops = append(stops, func() {
			f, err := os.Create(mem)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "fwpush: memory profile:", err)
			}
		})
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}
