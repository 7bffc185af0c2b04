package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// load sends a steady rate of requests to the storefront, as users would.
type load struct {
	ok, failed atomic.Int64
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	started    time.Time
}

func startLoad(ctx context.Context, url string, rate float64) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel, started: time.Now()}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}}
	interval := time.Duration(float64(time.Second) / rate)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						l.failed.Add(1)
					}
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					l.ok.Add(1)
				} else {
					l.failed.Add(1)
				}
			}()
		}
	}()
	return l
}

func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *load) summary() string {
	ok, failed := l.ok.Load(), l.failed.Load()
	total := ok + failed
	rate := 100.0
	if total > 0 {
		rate = 100 * float64(ok) / float64(total)
	}
	return fmt.Sprintf("load: %d requests in %s, %.2f%% succeeded", total, time.Since(l.started).Round(time.Second), rate)
}
