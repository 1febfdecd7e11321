package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-rtc/switchboard/internal/api"
	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/sdk/serverapi"
)

// docs/openapi.yaml against the real server: every documented route is served and every served
// route documented; real calls answer with documented status codes, and their bodies have the
// documented required fields.

type oaDoc struct {
	OpenAPI    string                          `yaml:"openapi"`
	Security   []map[string][]string           `yaml:"security"`
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `yaml:"type"`
			Scheme string `yaml:"scheme"`
		} `yaml:"securitySchemes"`
		Parameters map[string]oaParam    `yaml:"parameters"`
		Schemas    map[string]*oaSchema  `yaml:"schemas"`
		Responses  map[string]oaResponse `yaml:"responses"`
	} `yaml:"components"`
}

type oaParam struct {
	Ref      string `yaml:"$ref"`
	Name     string `yaml:"name"`
	In       string `yaml:"in"`
	Required bool   `yaml:"required"`
}

type oaOp struct {
	OperationID string    `yaml:"operationId"`
	Parameters  []oaParam `yaml:"parameters"`
	RequestBody *struct {
		Required bool                 `yaml:"required"`
		Content  map[string]yaml.Node `yaml:"content"`
	} `yaml:"requestBody"`
	Responses map[string]oaResponse `yaml:"responses"`
}

type oaResponse struct {
	Ref     string `yaml:"$ref"`
	Content map[string]struct {
		Schema *oaSchema `yaml:"schema"`
	} `yaml:"content"`
}

type oaSchema struct {
	Ref        string               `yaml:"$ref"`
	Type       any                  `yaml:"type"`
	Required   []string             `yaml:"required"`
	Properties map[string]*oaSchema `yaml:"properties"`
	Items      *oaSchema            `yaml:"items"`
	Enum       []string             `yaml:"enum"`
}

var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true, "trace": true}

// oaRoute is one documented operation.
type oaRoute struct {
	method, path string
	params       []oaParam // path-level and operation-level, resolved
	op           oaOp
}

func loadOpenAPI(t *testing.T) (*oaDoc, map[api.Route]*oaRoute) {
	t.Helper()
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc oaDoc
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", doc.OpenAPI)
	}
	resolve := func(p oaParam) oaParam {
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			r, found := doc.Components.Parameters[name]
			if !found {
				t.Fatalf("parameter %s is not defined", p.Ref)
			}
			return r
		}
		return p
	}
	routes := map[api.Route]*oaRoute{}
	ids := map[string]bool{}
	for path, item := range doc.Paths {
		var common []oaParam
		if n, ok := item["parameters"]; ok {
			if err := n.Decode(&common); err != nil {
				t.Fatalf("%s parameters: %v", path, err)
			}
		}
		for key, n := range item {
			switch {
			case key == "parameters" || key == "summary" || key == "description":
				continue
			case !httpMethods[key]:
				t.Fatalf("%s: %q is neither a method nor a path item field", path, key)
			}
			r := &oaRoute{method: strings.ToUpper(key), path: path}
			if err := n.Decode(&r.op); err != nil {
				t.Fatalf("%s %s: %v", key, path, err)
			}
			for _, p := range append(append([]oaParam{}, common...), r.op.Parameters...) {
				r.params = append(r.params, resolve(p))
			}
			if r.op.OperationID == "" || ids[r.op.OperationID] {
				t.Fatalf("%s %s: operationId %q missing or repeated", r.method, path, r.op.OperationID)
			}
			ids[r.op.OperationID] = true
			routes[api.Route{Method: r.method, Path: path}] = r
		}
	}
	return &doc, routes
}

// schemaOf resolves s's $ref.
func (d *oaDoc) schemaOf(t *testing.T, s *oaSchema) *oaSchema {
	t.Helper()
	for s != nil && s.Ref != "" {
		name, _ := strings.CutPrefix(s.Ref, "#/components/schemas/")
		s = d.Components.Schemas[name]
		if s == nil {
			t.Fatalf("schema %s is not defined", name)
		}
	}
	return s
}

// check reports where v lacks a required property of s, or has the wrong JSON type.
func (d *oaDoc) check(t *testing.T, s *oaSchema, v any, where string) {
	t.Helper()
	s = d.schemaOf(t, s)
	if s == nil {
		return
	}
	types := map[string]bool{}
	switch ty := s.Type.(type) {
	case string:
		types[ty] = true
	case []any:
		for _, x := range ty {
			types[x.(string)] = true
		}
	}
	var kind string
	switch v.(type) {
	case map[string]any:
		kind = "object"
	case []any:
		kind = "array"
	case string:
		kind = "string"
	case float64:
		kind = "number"
		if types["integer"] {
			kind = "integer"
		}
	case bool:
		kind = "boolean"
	case nil:
		kind = "null"
	}
	if len(types) > 0 && !types[kind] {
		t.Fatalf("%s is %s, documented %v", where, kind, s.Type)
	}
	switch v := v.(type) {
	case map[string]any:
		for _, req := range s.Required {
			if _, ok := v[req]; !ok {
				t.Fatalf("%s lacks the documented required property %q", where, req)
			}
		}
		for name, val := range v {
			if ps, ok := s.Properties[name]; ok {
				d.check(t, ps, val, where+"."+name)
			} else if len(s.Properties) > 0 {
				t.Fatalf("%s has property %q that is not documented", where, name)
			}
		}
	case []any:
		for i, x := range v {
			d.check(t, s.Items, x, where+"["+strconv.Itoa(i)+"]")
		}
	}
}

// fill replaces a route's {room} and {peer} with values.
func fill(path, room, peer string) string {
	return strings.NewReplacer("{room}", room, "{peer}", peer).Replace(path)
}

func TestAPIOpenAPIMatchesRoutes(t *testing.T) {
	doc, documented := loadOpenAPI(t)
	if s := doc.Components.SecuritySchemes["adminToken"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Fatalf("security scheme adminToken: %+v, want http bearer", s)
	}
	if len(doc.Security) != 1 || doc.Security[0]["adminToken"] == nil {
		t.Fatalf("security %v: every operation should need adminToken", doc.Security)
	}
	enum := doc.schemaOf(t, &oaSchema{Ref: "#/components/schemas/Error"}).Properties["error"].Properties["code"].Enum
	if !slices.Equal(enum, api.Codes()) {
		t.Fatalf("documented error codes %v, served %v", enum, api.Codes())
	}
	for _, c := range []string{serverapi.CodeAPIOff, serverapi.CodeTokenMissing, serverapi.CodeTokenInvalid, serverapi.CodeTokenExpired,
		serverapi.CodeTokenNotYetValid, serverapi.CodeAdminNotGranted, serverapi.CodeNoRoute, serverapi.CodeMethodNotAllowed,
		serverapi.CodeUnsupportedMedia, serverapi.CodeBadRoom, serverapi.CodeBadPeer, serverapi.CodeBadBody, serverapi.CodeMissingField,
		serverapi.CodeBadField, serverapi.CodeMetaTooLarge, serverapi.CodeBodyTooLarge, serverapi.CodeRoomNotFound,
		serverapi.CodePeerNotFound, serverapi.CodeUnavailable, serverapi.CodeTimeout, serverapi.CodeInternal} {
		if !slices.Contains(api.Codes(), c) {
			t.Fatalf("sdk/serverapi code %q is not one the API answers with", c)
		}
	}

	// Both ways: documented ⊆ registered and registered ⊆ documented.
	registered := map[api.Route]bool{}
	for _, r := range api.Routes() {
		registered[r] = true
		if documented[r] == nil {
			t.Errorf("%s %s is served but not in docs/openapi.yaml", r.Method, r.Path)
		}
	}
	for r := range documented {
		if !registered[r] {
			t.Errorf("%s %s is in docs/openapi.yaml but not served", r.Method, r.Path)
		}
	}
	// Each operation declares its path parameters, a JSON body when it takes one, and the
	// answers every route can give.
	wild := regexp.MustCompile(`\{([^}]+)\}`)
	for key, r := range documented {
		for _, m := range wild.FindAllStringSubmatch(key.Path, -1) {
			if !slices.ContainsFunc(r.params, func(p oaParam) bool { return p.Name == m[1] && p.In == "path" && p.Required }) {
				t.Errorf("%s %s: path parameter %s is not declared (in: path, required)", key.Method, key.Path, m[1])
			}
		}
		takesBody := key.Method == "POST" || key.Method == "PATCH"
		if takesBody != (r.op.RequestBody != nil) || (takesBody && (!r.op.RequestBody.Required || r.op.RequestBody.Content["application/json"].Kind == 0)) {
			t.Errorf("%s %s: request body documented %v, want a required application/json body: %v", key.Method, key.Path, r.op.RequestBody != nil, takesBody)
		}
		for _, code := range []string{"401", "403", "404", "500", "503", "504"} {
			if _, ok := r.op.Responses[code]; !ok {
				t.Errorf("%s %s: response %s is not documented", key.Method, key.Path, code)
			}
		}
	}
	if t.Failed() {
		return
	}

	var key auth.Key
	ts := startServer(t, apiKeys(&key))
	admin := adminToken(t, key)
	notAdmin := mint(t, key, grant{identity: "alice", room: "sales"})
	call := func(r *oaRoute, path, token, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(r.method, ts.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		// The status must be documented for the operation, and the body must match its schema.
		res, ok := r.op.Responses[strconv.Itoa(resp.StatusCode)]
		if !ok {
			t.Fatalf("%s %s answered %d, which docs/openapi.yaml does not list: %s", r.method, path, resp.StatusCode, b)
		}
		if name, ok := strings.CutPrefix(res.Ref, "#/components/responses/"); ok {
			res = doc.Components.Responses[name]
		}
		if c, ok := res.Content["application/json"]; ok {
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("%s %s: %d with %q, not JSON", r.method, path, resp.StatusCode, b)
			}
			doc.check(t, c.Schema, v, r.method+" "+path)
		} else if len(b) != 0 {
			t.Fatalf("%s %s: %d documented without a body, got %q", r.method, path, resp.StatusCode, b)
		}
		return resp.StatusCode, b
	}
	validBody := map[string]string{"POST": `{"data":{"n":1}}`, "PATCH": `{"meta":{"role":"host"}}`}

	// Every documented route is served (not the mux's no-route or 405) and refuses a missing
	// or non-admin token; a room or peer that is not there is a documented 404.
	const ghost = "AAAAAAAAAAAAAAAAAAAAAA"
	for k, r := range documented {
		path := fill(k.Path, "nobody-here", ghost)
		if status, _ := call(r, path, "", validBody[r.method]); status != 401 {
			t.Fatalf("%s %s without a token: %d", r.method, path, status)
		}
		if status, _ := call(r, path, notAdmin, validBody[r.method]); status != 403 {
			t.Fatalf("%s %s with a join token: %d", r.method, path, status)
		}
		status, b := call(r, path, admin, validBody[r.method])
		if (status == 404 && strings.Contains(string(b), api.CodeNoRoute)) || status == 405 {
			t.Fatalf("%s %s is documented but not served: %d %s", r.method, path, status, b)
		}
		if status/100 == 2 && k.Path != "/api/v1/rooms" {
			t.Fatalf("%s %s succeeded for a room that is not there: %d %s", r.method, path, status, b)
		}
		if status, _ := call(r, fill(k.Path, "bad%20room", ghost), admin, validBody[r.method]); status != 400 && k.Path != "/api/v1/rooms" {
			t.Fatalf("%s with a bad room name: %d", r.method, status)
		}
		if r.method == "POST" || r.method == "PATCH" {
			if status, _ := call(r, path, admin, "{"); status != 400 {
				t.Fatalf("%s %s with a broken body: %d", r.method, path, status)
			}
		}
	}

	// Success answers, in an order that leaves something for each call.
	a, _ := joinAs(t, ts, key, "sales", "alice")
	b, _ := joinAs(t, ts, key, "sales", "bob")
	a.expectPeerJoined(b.id)
	for _, step := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/v1/rooms", 200},
		{"GET", "/api/v1/rooms/{room}", 200},
		{"GET", "/api/v1/rooms/{room}/peers/{peer}", 200},
		{"POST", "/api/v1/rooms/{room}/messages", 204},
		{"PATCH", "/api/v1/rooms/{room}/peers/{peer}", 204},
		{"DELETE", "/api/v1/rooms/{room}/peers/{peer}", 204},
		{"DELETE", "/api/v1/rooms/{room}", 200},
	} {
		r := documented[api.Route{Method: step.method, Path: step.path}]
		if status, body := call(r, fill(step.path, "sales", b.id), admin, validBody[step.method]); status != step.want {
			t.Fatalf("%s %s: %d %s, want %d", step.method, step.path, status, body, step.want)
		}
	}
	a.expectServerMessage(`{"n":1}`)
	a.expectPeerUpdated(b.id, `{"role":"host"}`)
	a.expectPeerLeft(b.id, "removed")
	a.expectRemoved("room-closed")
}
