#!/usr/bin/env bash
# Seeds the fuzz corpora from ../shared/vectors (real messages from the seed PBXs and phones).
#
# Corpora live in tests/fuzz/corpus/<target>/ and are git-ignored: they are built here at run
# time and grow as libFuzzer finds new paths. Running this again only adds missing seeds.
#
#   tests/fuzz/seed.sh            # VECTORS=/path/to/vectors to override the source
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
vectors="${VECTORS:-$here/../../../shared/vectors}"
corpus="$here/corpus"
if [ ! -d "$vectors" ]; then
    echo "seed.sh: no vectors at $vectors (set VECTORS=...)" >&2
    exit 1
fi
mkdir -p "$corpus"/{parse,sdp,policy,framing,guard}

shopt -s nullglob globstar
files=("$vectors"/**/*.sip)
if [ ${#files[@]} -eq 0 ]; then
    echo "seed.sh: no *.sip files under $vectors" >&2
    exit 1
fi

sdp=0
for f in "${files[@]}"; do
    name="$(basename "$(dirname "$f")")_$(basename "$f" .sip)"
    cp "$f" "$corpus/parse/$name"
    cp "$f" "$corpus/policy/$name"
    # framing: knob byte 0x05 (6-byte chunks through push, 4096-byte limit), then the message
    # twice, pipelined on one stream.
    { printf '\005'; cat "$f" "$f"; } > "$corpus/framing/$name"
    # sdp: the body after the first empty line, when it is SDP.
    body="$corpus/sdp/$name"
    sed -n '/^\r$/,$p' "$f" | tail -n +2 > "$body"
    if [ "$(head -c 3 "$body")" = "v=0" ]; then
        sdp=$((sdp + 1))
    else
        rm -f "$body"
    fi
done

# Every vector on one stream: 64-byte chunks straight into read_buf, and a 512-byte limit that
# the larger INVITEs exceed (BodyTooLarge, then the stream carries on).
{ printf '\177'; cat "${files[@]}"; } > "$corpus/framing/all_vectors_64"
{ printf '\377'; cat "${files[@]}"; } > "$corpus/framing/all_vectors_small_limit"

# guard: text mode (first byte < 0x20) for the network parser and the scanner matcher...
printf '\001198.51.100.0/24' > "$corpus/guard/net_v4"
printf '\001::ffff:192.0.2.0/120' > "$corpus/guard/net_mapped"
printf '\0012001:db8::/32' > "$corpus/guard/net_v6"
printf '\001Friendly-Scanner' > "$corpus/guard/ua_scanner"
printf '\001MicroSIP/3.21.3' > "$corpus/guard/ua_phone"
# ...and op sequences (4 bytes each: op, source, flags, time step) for the state machine:
# a check flood, strikes to a ban, calls admitted and released across a reload, slots.
printf 'G\000\001\004\001\000\025\000\000\001\005\000\000\002\011\000\000\001\035\001' > "$corpus/guard/checks"
printf 'G\001\001\001\001\001\001\001\001\001\001\001\000\001\005\000' > "$corpus/guard/strikes"
printf 'G\002\001\001\000\002\002\011\000\002\003\015\000\010\000\000\000\003\000\000\000\003\001\000\000' > "$corpus/guard/calls_reload"
printf 'G\004\001\001\000\004\001\005\000\004\002\011\000\005\000\000\000\006\000\377\000' > "$corpus/guard/slots"

echo "seeded from $vectors: ${#files[@]} messages, $sdp SDP bodies -> $corpus"
