package token

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/control/store"
)

// Mount adds the join token calls to the API, behind its admin token:
// POST /api/v1/tokens (create; the answer is the only time the token is
// shown), GET /api/v1/tokens, POST /api/v1/tokens/{name}/revoke. pin gives
// the CA hash that tokens carry.
func Mount(s *api.Server, st store.Store, pin func() string, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "tokens")
	s.Handle("POST /api/v1/tokens", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.TokenCreateRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			api.WriteError(w, http.StatusBadRequest, "request body: "+err.Error())
			return
		}
		o := CreateOptions{Name: req.Name, Namespace: req.Namespace, ServiceAccount: req.ServiceAccount}
		if req.TTL != "" {
			d, err := time.ParseDuration(req.TTL)
			if err != nil || d <= 0 {
				api.WriteError(w, http.StatusBadRequest, "ttl "+req.TTL+": want a positive duration such as 24h")
				return
			}
			o.TTL = d
		}
		rec, err := Create(r.Context(), st, o, time.Now())
		switch {
		case errors.Is(err, ErrExists):
			api.WriteError(w, http.StatusConflict, err.Error())
			return
		case err != nil:
			api.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		log.Info("join token created", "name", rec.Name, "namespace", rec.Namespace, "service_account", rec.ServiceAccount, "expires", rec.Expires)
		api.WriteJSON(w, http.StatusCreated, api.TokenCreated{TokenInfo: Info(rec, time.Now()), Token: Format(pin(), rec.Secret)})
	}))
	s.Handle("GET /api/v1/tokens", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		recs, err := List(r.Context(), st)
		if err != nil {
			api.WriteError(w, http.StatusInternalServerError, err.Error())
			return
		}
		out := api.TokenList{Items: []api.TokenInfo{}}
		now := time.Now()
		for _, rec := range recs {
			out.Items = append(out.Items, Info(rec, now))
		}
		api.WriteJSON(w, http.StatusOK, out)
	}))
	s.Handle("POST /api/v1/tokens/{name}/revoke", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, err := Revoke(r.Context(), st, r.PathValue("name"), time.Now())
		switch {
		case errors.Is(err, store.ErrNotFound):
			api.WriteError(w, http.StatusNotFound, "no join token named "+r.PathValue("name"))
			return
		case err != nil:
			api.WriteError(w, http.StatusInternalServerError, err.Error())
			return
		}
		log.Info("join token revoked", "name", rec.Name)
		api.WriteJSON(w, http.StatusOK, Info(rec, time.Now()))
	}))
}

// Info is what may be shown of a token: everything but the secret.
func Info(r *Record, now time.Time) api.TokenInfo {
	return api.TokenInfo{Name: r.Name, Namespace: r.Namespace, ServiceAccount: r.ServiceAccount,
		Created: r.Created, Expires: r.Expires, Revoked: r.Revoked, State: r.State(now)}
}
