# Sourced by the scripts that start the service and the gateway: each server binds
# 127.0.0.1:0 and the port the kernel gave it is read from its own log line, so no port is
# picked first and bound later (a free port found by another process can be taken in between).
#
# `bound_port LOG TEXT`: the port of the first `TEXT127.0.0.1:PORT` in LOG (bounded: 60 s).
# The lines are INFO lines: start the servers with RUST_LOG letting them through, e.g.
# `warn,articles_service::server=info` and `warn,articles_gateway::server=info`.
bound_port() {
  local log=$1 text=$2 port
  for _ in $(seq 1 600); do
    port=$(grep -o "${text}127\.0\.0\.1:[0-9]*" "$log" 2>/dev/null | head -n 1 | sed 's/.*://')
    if [ -n "$port" ]; then
      echo "$port"
      return 0
    fi
    sleep 0.1
  done
  echo "no '${text}127.0.0.1:PORT' line in $log:" >&2
  tail -n 20 "$log" >&2
  return 1
}

# The RUST_LOG of a child whose address is read from its log: warnings, and the listen lines.
SERVICE_LOG="warn,articles_service::server=info"
GATEWAY_LOG="warn,articles_gateway::server=info"
