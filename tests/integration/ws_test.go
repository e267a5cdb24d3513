package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// /v3/watch over a websocket, as etcd's gateway proxy serves it: the client writes the
// watch requests as JSON messages and reads {"result": ...} messages.
func TestGatewayWatchOverWebsocket(t *testing.T) {
	forEachBinary(t, func(t *testing.T, b binary) {
		base := newCluster(t, b, 1).members[0].clientURL
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/v3/watch", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"create_request": {"key":"Zm9v"}}`)); err != nil {
			t.Fatal(err)
		}
		read := func() map[string]any {
			t.Helper()
			_, msg, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			var v map[string]any
			if err := json.Unmarshal(msg, &v); err != nil {
				t.Fatalf("message %q: %v", msg, err)
			}
			r, _ := v["result"].(map[string]any)
			return r
		}
		if r := read(); r["created"] != true {
			t.Fatalf("first message = %v, want created", r)
		}
		resp, err := http.Post(base+"/v3/kv/put", "application/json", strings.NewReader(`{"key": "Zm9v", "value": "YmFy"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		r := read()
		evs, _ := r["events"].([]any)
		if len(evs) != 1 || evs[0].(map[string]any)["kv"].(map[string]any)["value"] != "YmFy" {
			t.Fatalf("event message = %v", r)
		}
	})
}
