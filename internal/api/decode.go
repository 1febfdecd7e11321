package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"
)

// decodeBody reads r's body, a JSON object of at most MaxBodyBytes sent as application/json,
// into v, refusing unknown fields and anything after the object.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "send the body as JSON with \"Content-Type: application/json\"")
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			return errorf(http.StatusBadRequest, CodeBadBody, "the body holds more than one JSON value; send one object")
		}
		return bodyError(err)
	}
	return nil
}

// bodyError turns a decoding error into its 400 or 413 answer.
func bodyError(err error) *apiError {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the body is over %d bytes", MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, CodeBadBody, "the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, CodeBadBody, "the body ends in the middle of a JSON value")
	case errors.As(err, &syntax):
		return errorf(http.StatusBadRequest, CodeBadBody, "the body is not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return errorf(http.StatusBadRequest, CodeBadBody, "the body must be a JSON object, not %s", typ.Value)
		}
		want := "another type"
		if typ.Type != nil && typ.Type.Kind() == reflect.String {
			want = "a string"
		}
		return errorf(http.StatusBadRequest, CodeBadField, "%.64s must be %s, not %s", typ.Field, want, typ.Value)
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return errorf(http.StatusBadRequest, CodeBadBody, "unknown field %.80s in the body", f)
	}
	return errorf(http.StatusBadRequest, CodeBadBody, "the body could not be read: %v", err)
}

// compactJSON returns raw, a valid JSON value, without insignificant space, after checking
// its strings are UTF-8 (the peers' WebSocket text frames must be).
func compactJSON(field string, raw json.RawMessage) ([]byte, *apiError) {
	if !utf8.Valid(raw) {
		return nil, errorf(http.StatusBadRequest, CodeBadField, "%s holds text that is not UTF-8", field)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, errorf(http.StatusBadRequest, CodeBadField, "%s is not valid JSON", field)
	}
	return b.Bytes(), nil
}
