package ca

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"weft.dev/weft/internal/control/api"
	"weft.dev/weft/internal/identity"
)

// Mount adds the CA calls to the API, behind its admin token: GET
// /api/v1/ca (the roots and any rotation in progress), GET
// /api/v1/ca/bundle (the trust bundle, PEM), POST /api/v1/ca/rotate, POST
// /api/v1/ca/drop-old.
func (a *Authority) Mount(s *api.Server) {
	s.Handle("GET /api/v1/ca", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, a.Status())
	}))
	s.Handle("GET /api/v1/ca/bundle", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(identity.EncodeCertificates(a.Roots()...))
	}))
	s.Handle("POST /api/v1/ca/rotate", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.CARotateRequest
		if r.ContentLength != 0 {
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
				api.WriteError(w, http.StatusBadRequest, "request body: "+err.Error())
				return
			}
		}
		var overlap time.Duration
		if req.Overlap != "" {
			d, err := time.ParseDuration(req.Overlap)
			if err != nil || d <= 0 {
				api.WriteError(w, http.StatusBadRequest, "overlap "+req.Overlap+": want a positive duration such as 48h")
				return
			}
			overlap = d
		}
		st, err := a.Rotate(r.Context(), overlap)
		a.answer(w, st, err)
	}))
	s.Handle("POST /api/v1/ca/drop-old", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := a.DropOld(r.Context())
		a.answer(w, st, err)
	}))
}

func (a *Authority) answer(w http.ResponseWriter, st api.CAStatus, err error) {
	switch {
	case errors.Is(err, ErrIntermediate), errors.Is(err, ErrNoOverlap):
		api.WriteError(w, http.StatusConflict, err.Error())
	case err != nil:
		a.log.Error("CA change failed", "error", err)
		api.WriteError(w, http.StatusInternalServerError, err.Error())
	default:
		api.WriteJSON(w, http.StatusOK, st)
	}
}
