# Sourced by scripts/schemathesis-test and scripts/client-checks: starts the real service
# (temporary SQLite, 20 demo articles, an API token) and the real gateway in front of it on free
# loopback ports (each binds port 0; scripts/lib/ports.sh reads the port back from its log), and
# stops both when the sourcing script exits.
#
# After `start_services`: $rest_port (the gateway), $token (the API token), $work (a temporary
# folder holding service.log and gateway.log), and `show_service_logs` for a failure report.

services_pids=()
work=$(mktemp -d)
stop_services() {
  for pid in "${services_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap stop_services EXIT

source "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

start_services() {
  cargo build --quiet --locked -p articles-service -p articles-gateway --bins
  local grpc_port
  token="checks-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"

  RUST_LOG=$SERVICE_LOG target/debug/articles-service serve --listen 127.0.0.1:0 \
    --database-url "sqlite://$work/articles.db" --demo-articles 20 --api-token "$token" \
    >"$work/service.log" 2>&1 &
  services_pids+=($!)
  grpc_port=$(bound_port "$work/service.log" "gRPC server listening on ")
  RUST_LOG=$GATEWAY_LOG target/debug/articles-gateway serve --listen 127.0.0.1:0 \
    --backend "http://127.0.0.1:$grpc_port" >"$work/gateway.log" 2>&1 &
  services_pids+=($!)
  rest_port=$(bound_port "$work/gateway.log" "gateway listening listen=")

  # Bounded: 100 tries, 10 s.
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$rest_port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$rest_port/readyz" >/dev/null
}

show_service_logs() {
  tail -n 50 "$work/service.log" "$work/gateway.log" >&2 || true
}
