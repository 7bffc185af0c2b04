package app

import (
	"net/http"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// cart keeps a shared item count and answers over a WebSocket: "count"
// returns it, "add" adds one.
type cart struct {
	items    atomic.Int64
	upgrader websocket.Upgrader
}

func newCart() *cart {
	c := &cart{}
	c.items.Store(3)
	return c
}

func (c *cart) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/live" {
		http.NotFound(w, r)
		return
	}
	conn, err := c.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade already answered
	}
	defer conn.Close()
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if string(msg) == "add" {
			c.items.Add(1)
		}
		if err := conn.WriteJSON(map[string]int64{"items": c.items.Load()}); err != nil {
			return
		}
	}
}
