package proxy

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"weft.dev/weft/internal/compile"
)

// injectFault applies a FaultInjection: maybe a delay, then maybe an abort.
// It reports whether it answered the request.
func injectFault(w http.ResponseWriter, r *http.Request, f *compile.Fault) bool {
	if f.Delay > 0 && hit(f.DelayPercent) {
		t := time.NewTimer(f.Delay.D())
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	if f.AbortPercent > 0 && hit(f.AbortPercent) {
		if isGRPC(r) && f.AbortGRPCStatus != nil {
			h := w.Header()
			h.Set(HeaderError, ReasonFaultAbort)
			h.Set("Content-Type", "application/grpc")
			h.Set("Grpc-Status", strconv.Itoa(*f.AbortGRPCStatus))
			h.Set("Grpc-Message", "fault injected")
			w.WriteHeader(http.StatusOK)
			return true
		}
		status := f.AbortStatus
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		answer(w, r, status, ReasonFaultAbort, "fault injected")
		return true
	}
	return false
}

// hit is true for percent% of calls.
func hit(percent float64) bool {
	return percent >= 100 || rand.Float64()*100 < percent
}
