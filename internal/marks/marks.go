// Package marks is scratch instrumentation (never committed).
package marks

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"
)

var f *os.File
var prof *os.File

func init() {
	if os.Getenv("CFH_MEMPROF") != "" {
		runtime.MemProfileRate = 4096
	}
	if p := os.Getenv("CFH_MARKS"); p != "" {
		f, _ = os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	}
}

// M appends "time pid s".
func M(s string) {
	if f == nil {
		return
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Fprintf(f, "%.6f %d %s minflt=%d sys=%.1fms user=%.1fms\n", float64(time.Now().UnixNano())/1e9, os.Getpid(), s, ru.Minflt, float64(ru.Stime.Nano())/1e6, float64(ru.Utime.Nano())/1e6)
}

func minflt() int {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return int(ru.Minflt)
}

func StartEnv(env string) {
	if p := os.Getenv(env); p != "" && prof == nil {
		prof, _ = os.Create(fmt.Sprintf("%s.%d", p, os.Getpid()))
		pprof.StartCPUProfile(prof)
	}
}
func Start() { StartEnv("CFH_PROF") }
func Stop() {
	if p := os.Getenv("CFH_MEMPROF"); p != "" {
		if mf, err := os.Create(fmt.Sprintf("%s.%d", p, os.Getpid())); err == nil {
			pprof.Lookup("allocs").WriteTo(mf, 0)
			mf.Close()
		}
	}
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
		prof = nil
	}
}
