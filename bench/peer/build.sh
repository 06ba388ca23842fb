#!/usr/bin/env bash
# Builds the Go "peer" for the benchmark: an in-memory grpc-go ArticleService
# backend and a plain grpc-gateway 1.6.4 proxy in front of it, from Debian
# packages only (GOPATH mode, no module proxy).
#
#   bash bench/peer/build.sh OUT_DIR
#
# Leaves OUT_DIR/articles-peer-backend and OUT_DIR/articles-peer-gateway and
# prints their paths. Does nothing when both are newer than every input.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
src_proto="$repo/proto/article/v1/article.proto"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
backend_bin="$out/articles-peer-backend"
gateway_bin="$out/articles-peer-gateway"

inputs=("$here/build.sh" "$src_proto" "$here"/backend/*.go "$here"/gateway/*.go)

print_bins() {
  echo "$backend_bin"
  echo "$gateway_bin"
}

up_to_date() {
  local bin f
  for bin in "$backend_bin" "$gateway_bin"; do
    [[ -x "$bin" ]] || return 1
    for f in "${inputs[@]}"; do
      [[ "$bin" -nt "$f" ]] || return 1
    done
  done
}

if up_to_date; then
  echo "peer up to date"
  print_bins
  exit 0
fi

# --- Debian packages -------------------------------------------------------
# golang-goprotobuf-dev is listed before golang-google-grpc-dev so that apt
# satisfies grpc's "protobuf-1-3 | protobuf-1-5" with the 1.3 API that
# grpc-gateway 1.6.4 and protoc-gen-go 1.3.5 are written against.
packages=(
  golang-go
  protobuf-compiler
  golang-goprotobuf-dev
  golang-google-genproto-dev
  golang-google-grpc-dev
  golang-grpc-gateway
  golang-github-grpc-ecosystem-grpc-gateway-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" 2>/dev/null | grep '^Status: install ok installed' >/dev/null || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

# --- Environment: GOPATH mode, nothing from the network --------------------
unset GOFLAGS GOROOT
export GO111MODULE=off GOPROXY=off GOSUMDB=off GONOSUMDB= GOTOOLCHAIN=local
export GOPATH="$out/gopath:/usr/share/gocode"
export GOCACHE="$out/gocache"
export CGO_ENABLED=0
export PATH="/usr/lib/go/bin:/usr/bin:$PATH"
gw_src=/usr/share/gocode/src/github.com/grpc-ecosystem/grpc-gateway
googleapis="$gw_src/third_party/googleapis"

# --- The proto copy ---------------------------------------------------------
# Only annotations the peer does not read are dropped (buf/validate/validate.proto's
# validation rules and google.api.field_behavior, single- or multi-line field
# options), plus proto3 `optional`, which protoc refuses to hand to
# protoc-gen-go 1.3.5 / protoc-gen-grpc-gateway 1.6.4 (same wire format).
# The google.api.http rules are kept as they are.
pkg=articlespeer
gen_import="$pkg/gen/articlev1"
proto_dir="$out/proto"
rm -rf "$proto_dir" "$out/gopath/src/$pkg"
mkdir -p "$proto_dir/article/v1" "$out/gopath/src"
python3 - "$src_proto" "$proto_dir/article/v1/article.proto" "$gen_import" <<'PY'
import re, sys
src, dst, gen_import = sys.argv[1:]
text = open(src).read()
text = re.sub(r'^import "(buf/validate/validate|google/api/field_behavior|protoc-gen-openapiv2/options/annotations)\.proto";\n', "", text, flags=re.M)
# grpc-gateway 1.6.4 has no openapiv2 options (only the older swagger ones): the file's goes.
text = re.sub(r"^option \(grpc\.gateway\.protoc_gen_openapiv2\.options\.\w+\) = \{.*?^\};\n", "", text, flags=re.M | re.S)
# Its methods' openapiv2 options too (CreateArticle's 201), closed by a `};` at their own indent.
text = re.sub(r"^([ \t]+)option \(grpc\.gateway\.protoc_gen_openapiv2\.options\.\w+\) = \{.*?^\1\};\n", "", text, flags=re.M | re.S)
# A field's option list (after `= <number>`), scanned to its closing bracket outside string
# literals and comments (a rule's pattern may hold brackets); dropped options are left out.
def split_options(body):
    parts, depth, quote, start, i = [], 0, None, 0, 0
    while i < len(body):
        c = body[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "/" and body[i + 1:i + 2] == "/":
            i = body.index("\n", i)
        elif c in "[{(":
            depth += 1
        elif c in "]})":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
        i += 1
    parts.append(body[start:])
    return parts
def closing(text, i):
    depth, quote = 0, None
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "/" and text[i + 1:i + 2] == "/":
            i = text.index("\n", i)
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise SystemExit("build.sh: unbalanced field options")
out, pos = [], 0
for m in re.finditer(r"=\s*\d+(\s*)\[", text):
    if m.start() < pos:
        continue
    open_at = m.end() - 1
    end = closing(text, open_at)
    body = text[open_at + 1:end]
    kept = [o.strip() for o in split_options(body)
            if not re.match(r"\((buf\.validate\.field|google\.api\.field_behavior|grpc\.gateway\.protoc_gen_openapiv2\.options\.\w+)\)", o.strip())]
    out.append(text[pos:m.start() + len(m.group(0)) - len(m.group(1)) - 1])
    if kept:
        out.append(" [" + ", ".join(kept) + "]")
    pos = end + 1
out.append(text[pos:])
text = "".join(out)
text = re.sub(r"^(\s*)optional ", r"\1", text, flags=re.M)
text = text.replace("package article.v1;", f'package article.v1;\n\noption go_package = "{gen_import};articlev1";', 1)
open(dst, "w").write(text)
PY
if grep -nE 'buf\.validate|field_behavior|protoc_gen_openapiv2|^[[:space:]]*optional ' "$proto_dir/article/v1/article.proto" >&2; then
  echo "build.sh: could not strip the options above from the proto copy" >&2
  exit 1
fi

protoc \
  -I "$proto_dir" -I "$googleapis" -I /usr/include \
  --go_out="plugins=grpc:$out/gopath/src" \
  --grpc-gateway_out="logtostderr=true:$out/gopath/src" \
  "$proto_dir/article/v1/article.proto"

# --- The Go programs --------------------------------------------------------
mkdir -p "$out/gopath/src/$pkg/backend" "$out/gopath/src/$pkg/gateway"
cp "$here"/backend/*.go "$out/gopath/src/$pkg/backend/"
cp "$here"/gateway/*.go "$out/gopath/src/$pkg/gateway/"

go version >&2
go build -trimpath -o "$backend_bin.tmp" "$pkg/backend"
go build -trimpath -o "$gateway_bin.tmp" "$pkg/gateway"
mv -f "$backend_bin.tmp" "$backend_bin"
mv -f "$gateway_bin.tmp" "$gateway_bin"

print_bins
