#!/usr/bin/env bash
# Builds Kubernetes' kube-apiserver (this directory's module: k8s.io/kubernetes v1.34.2 with a
# replace for every staging module at v0.34.2) and runs it against a fresh single member of
# SERVER=metastore (default; built from ../../cmd/metastore) or SERVER=etcd (ETCD_BIN, default
# ../../.etcd-bin/etcd), then runs smoke.sh against it. Exit status: smoke.sh's.
# Needs about 10 minutes and 3 GB for the first build; not part of CI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/kube-smoke.XXXXXX)
server=${SERVER:-metastore}
[ -x "$here/bin/kube-apiserver" ] || (cd "$here" && go build -o bin/kube-apiserver .)
case "$server" in
  metastore) bin="$root/bin/metastore"; (cd "$root" && go build -o bin/metastore ./cmd/metastore) ;;
  etcd) bin=${ETCD_BIN:-$root/.etcd-bin/etcd} ;;
  *) echo "SERVER must be metastore or etcd" >&2; exit 2 ;;
esac
cport=${CLIENT_PORT:-23791}; pport=$((cport + 1)); aport=${PORT:-6443}
"$bin" --name m0 --data-dir "$work/data" --listen-client-urls "http://127.0.0.1:$cport" \
  --advertise-client-urls "http://127.0.0.1:$cport" --listen-peer-urls "http://127.0.0.1:$pport" \
  --initial-advertise-peer-urls "http://127.0.0.1:$pport" --initial-cluster "m0=http://127.0.0.1:$pport" \
  > "$work/server.log" 2>&1 &
spid=$!
openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
openssl rsa -in "$work/sa.key" -pubout -out "$work/sa.pub" 2>/dev/null
echo 'admintoken,admin,admin,system:masters' > "$work/tokens.csv"
"$here/bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$cport" \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$work/sa.pub" --service-account-signing-key-file="$work/sa.key" \
  --token-auth-file="$work/tokens.csv" --authorization-mode=RBAC \
  --cert-dir="$work/certs" --secure-port="$aport" --bind-address=127.0.0.1 \
  --service-cluster-ip-range=10.96.0.0/16 --advertise-address=127.0.0.1 --v=1 \
  --event-ttl="${EVENT_TTL:-5s}" \
  > "$work/apiserver.log" 2>&1 &
apid=$!
trap 'kill $apid $spid 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 120); do
  [ "$(curl -sk -H 'Authorization: Bearer admintoken' "https://127.0.0.1:$aport/readyz" 2>/dev/null)" = ok ] && break
  sleep 1
done
echo "server: $server ($bin); logs in $work"
PORT=$aport "$here/smoke.sh"
