#!/usr/bin/env bash
# Smoke test of a kube-apiserver on https://127.0.0.1:${PORT:-6443}: create, get, paginated
# list, watch from a list's resourceVersion, update, delete. Prints what failed; exit 1 if any.
set -uo pipefail
api=https://127.0.0.1:${PORT:-6443}
k() { curl -sk -H "Authorization: Bearer admintoken" -H 'Content-Type: application/json' "$@"; }
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
ns=smoke$RANDOM
k -X POST "$api/api/v1/namespaces" -d "{\"metadata\":{\"name\":\"$ns\"}}" >/dev/null
for i in 1 2 3; do
  k -X POST "$api/api/v1/namespaces/$ns/configmaps" -d "{\"metadata\":{\"name\":\"cm$i\"},\"data\":{\"v\":\"$i\"}}" >/dev/null
done
check "get" '[ "$(k $api/api/v1/namespaces/$ns/configmaps/cm2 | python3 -c "import sys,json;print(json.load(sys.stdin)[\"data\"][\"v\"])")" = 2 ]'
page=$(k "$api/api/v1/namespaces/$ns/configmaps?limit=2")
cont=$(echo "$page" | python3 -c 'import sys,json;print(json.load(sys.stdin)["metadata"].get("continue",""))')
rv=$(echo "$page" | python3 -c 'import sys,json;print(json.load(sys.stdin)["metadata"]["resourceVersion"])')
check "paginated list (2 + continue)" '[ -n "$cont" ] && [ "$(echo "$page" | python3 -c "import sys,json;print(len(json.load(sys.stdin)[\"items\"]))")" = 2 ]'
check "second page" '[ "$(k "$api/api/v1/namespaces/$ns/configmaps?limit=2&continue=$cont" | python3 -c "import sys,json;print(len(json.load(sys.stdin)[\"items\"]))")" = 1 ]'
(k "$api/api/v1/namespaces/$ns/configmaps?watch=1&resourceVersion=$rv&timeoutSeconds=5" > /tmp/smoke-watch.$$ ) &
sleep 1
k -X PUT "$api/api/v1/namespaces/$ns/configmaps/cm1" -d "{\"metadata\":{\"name\":\"cm1\"},\"data\":{\"v\":\"updated\"}}" >/dev/null
k -X DELETE "$api/api/v1/namespaces/$ns/configmaps/cm3" >/dev/null
wait
check "watch sees MODIFIED and DELETED" 'grep -q "\"type\":\"MODIFIED\"" /tmp/smoke-watch.$$ && grep -q "\"type\":\"DELETED\"" /tmp/smoke-watch.$$'
check "consistent list from the watch cache" '[ "$(k "$api/api/v1/namespaces/$ns/configmaps" | python3 -c "import sys,json;print(len(json.load(sys.stdin)[\"items\"]))")" = 2 ]'
check "apiserver identity leases (etcd leases, lease renewals)" '[ "$(k "$api/apis/coordination.k8s.io/v1/namespaces/kube-system/leases" | python3 -c "import sys,json;print(len(json.load(sys.stdin)[\"items\"]))")" -ge 1 ]'
# An event lives in etcd under a lease of --event-ttl (run.sh: 5 s): it must go when the
# lease expires (up to 60 s here: the server's minimum TTL and its expiry pass).
k -X POST "$api/api/v1/namespaces/$ns/events" -d "{\"metadata\":{\"name\":\"ev1\"},\"involvedObject\":{\"kind\":\"ConfigMap\",\"name\":\"cm1\",\"namespace\":\"$ns\"},\"reason\":\"Smoke\",\"message\":\"hello\",\"type\":\"Normal\"}" >/dev/null
check "event created" '[ "$(k "$api/api/v1/namespaces/$ns/events/ev1" | python3 -c "import sys,json;print(json.load(sys.stdin).get(\"reason\",\"\"))")" = Smoke ]'
gone=1
for _ in $(seq 60); do
  code=$(k -o /dev/null -w '%{http_code}' "$api/api/v1/namespaces/$ns/events/ev1")
  [ "$code" = 404 ] && { gone=0; break; }
  sleep 1
done
check "event expired with its lease (--event-ttl)" '[ $gone = 0 ]'
check "readyz" '[ "$(k "$api/readyz")" = ok ]'
rm -f /tmp/smoke-watch.$$
exit $fail
