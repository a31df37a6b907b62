#!/bin/sh
# gen_jwt_vectors.sh - regenerate tests/unit/jwt_vectors.h and the JWT fuzz
# seeds in tests/fuzz/corpus/jwt/
#
# The tokens come from tools seatcast did not write: the OpenSSL command line
# (openssl genpkey / dgst -sign / dgst -mac HMAC, DER signatures turned into
# JOSE r||s with asn1parse) and the npm package jsonwebtoken (through
# gen_jwt_vectors.js).  The RFC 7515 appendix A.1-A.3 examples are copied
# from the RFC; their JWK public keys are turned into PEM here.
#
# Run by hand from the repository root; make check never runs it:
#
#     mkdir -p /tmp/jwtgen && (cd /tmp/jwtgen && npm install jsonwebtoken)
#     JWTGEN_DIR=/tmp/jwtgen tests/unit/gen_jwt_vectors.sh
#
# Needs openssl (3.x), node, xxd, awk; clang-format if installed.  Keys
# are random: every run rewrites every vector, so commit jwt_vectors.h and
# the seeds together.  Time claims are fixed (check_jwt.c verifies with
# now = JWTV_NOW), so nothing ages.  No private key is written to the
# repository.
set -eu

JWTGEN_DIR=${JWTGEN_DIR:-/tmp/jwtgen}
OUT=tests/unit/jwt_vectors.h
SEEDS=tests/fuzz/corpus/jwt
HERE=$(cd "$(dirname "$0")" && pwd)

[ -f "$OUT" ] || [ -d tests/unit ] || {
    echo "run from the repository root" >&2
    exit 2
}
[ -d "$JWTGEN_DIR/node_modules/jsonwebtoken" ] || {
    echo "jsonwebtoken not found in $JWTGEN_DIR/node_modules" >&2
    exit 2
}

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# --- helpers ---------------------------------------------------------------

b64url() {
    openssl base64 -A | tr '+/' '-_' | tr -d '='
}

# base64url text on stdin -> lowercase hex on stdout
b64url_hex() {
    s=$(tr -- '-_' '+/')
    while [ $((${#s} % 4)) -ne 0 ]; do
        s="$s="
    done
    printf '%s' "$s" | openssl base64 -d -A | xxd -p | tr -d '\n'
}

# DER ECDSA-Sig-Value on stdin -> JOSE r||s, each $1 bytes (RFC 7518 3.4)
der_to_jose() {
    openssl asn1parse -inform DER |
        awk -F: -v n=$(($1 * 2)) '/INTEGER/ {
            h = $NF; while (length(h) < n) h = "0" h; printf "%s", h }' |
        xxd -r -p
}

# ossl_sign ALG: JWS signature of stdin with the matching key
ossl_sign() {
    case $1 in
    HS*) openssl dgst "-sha${1#HS}" -mac HMAC -macopt "key:$SECRET" -binary ;;
    RS*) openssl dgst "-sha${1#RS}" -sign "$W/rsa.pem" -binary ;;
    ES256) openssl dgst -sha256 -sign "$W/ec256.pem" -binary | der_to_jose 32 ;;
    ES384) openssl dgst -sha384 -sign "$W/ec384.pem" -binary | der_to_jose 48 ;;
    esac
}

# ossl_token ALG HEADER CLAIMS
ossl_token() {
    input="$(printf '%s' "$2" | b64url).$(printf '%s' "$3" | b64url)"
    printf '%s.%s' "$input" "$(printf '%s' "$input" | ossl_sign "$1" | b64url)"
}

pubkey() {
    openssl pkey -in "$W/$1.pem" -pubout -out "$W/$1.pub"
}

# emit_pem NAME FILE: a PEM file as a C string constant, one line per line
emit_pem() {
    printf 'static const char %s[] =\n' "$1"
    sed 's/^/    "/; s/$/\\n"/' "$2"
    printf '    ;\n\n'
}

# --- keys ------------------------------------------------------------------

SECRET=$(openssl rand -hex 32)
printf '%s\n' "$SECRET" >"$W/secret.txt"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$W/rsa.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$W/rsa_other.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 \
    -out "$W/rsa1024.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$W/ec256.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 \
    -out "$W/ec384.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 \
    -out "$W/ec521.pem"
openssl genpkey -algorithm ED25519 -out "$W/ed25519.pem"
for k in rsa rsa_other rsa1024 ec256 ec384 ec521 ed25519; do
    pubkey $k
done
openssl req -x509 -new -key "$W/rsa.pem" -subj /CN=seatcast-test \
    -days 36500 -sha256 -out "$W/rsa_cert.pem" 2>/dev/null

# RFC 7515 A.2.1 RSA key and A.3.1 P-256 key, public halves, JWK -> PEM
RFC_N=ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qP\
CJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9w\
Gzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xs\
mtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2\
ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ
RFC_X=f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU
RFC_Y=x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0
cat >"$W/a2.cnf" <<EOF
asn1=SEQUENCE:spki
[spki]
alg=SEQUENCE:alg
key=BITWRAP,SEQUENCE:rsakey
[alg]
oid=OID:rsaEncryption
null=NULL
[rsakey]
n=INTEGER:0x$(printf '%s' "$RFC_N" | b64url_hex)
e=INTEGER:0x010001
EOF
RFC_XY=$(printf '%s' "$RFC_X" | b64url_hex)$(printf '%s' "$RFC_Y" | b64url_hex)
cat >"$W/a3.cnf" <<EOF
asn1=SEQUENCE:spki
[spki]
alg=SEQUENCE:alg
key=FORMAT:HEX,BITSTRING:04$RFC_XY
[alg]
oid=OID:id-ecPublicKey
curve=OID:prime256v1
EOF
for a in a2 a3; do
    openssl asn1parse -genconf "$W/$a.cnf" -out "$W/$a.der" >/dev/null
    openssl pkey -pubin -inform DER -in "$W/$a.der" -out "$W/rfc_$a.pub"
done

# --- tokens ----------------------------------------------------------------

RFC_PAYLOAD=eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGF\
tcGxlLmNvbS9pc19yb290Ijp0cnVlfQ
{
    echo "rfc_a1 eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.$RFC_PAYLOAD.\
dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    echo "rfc_a2 eyJhbGciOiJSUzI1NiJ9.$RFC_PAYLOAD.cC4hiUPoj9Eetdgtv3hF80EGrhuB\
__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9\
CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb\
1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phC\
nvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe\
77Rw"
    echo "rfc_a3 eyJhbGciOiJFUzI1NiJ9.$RFC_PAYLOAD.DtEhU3ljbEg8L38VWAfUAqOyKAM6\
-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"

    # OpenSSL command line: no typ, fractional NumericDates
    claims='{"sub":"user-ossl","nbf":1699999999.25,"exp":4102444800.5}'
    for alg in HS256 HS384 HS512 RS256 RS384 RS512 ES256 ES384; do
        lc=$(printf '%s' "$alg" | tr '[:upper:]' '[:lower:]')
        echo "ossl_$lc $(ossl_token "$alg" "{\"alg\":\"$alg\"}" "$claims")"
    done

    # key confusion: RS256 claims relabelled HS256, MACed with the public PEM
    input="$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64url).$(printf '%s' \
        '{"sub":"mallory","exp":4102444800}' | b64url)"
    sig=$(printf '%s' "$input" | openssl dgst -sha256 -mac HMAC -macopt \
        "hexkey:$(xxd -p "$W/rsa.pub" | tr -d '\n')" -binary | b64url)
    echo "ossl_confusion $input.$sig"

    NODE_PATH="$JWTGEN_DIR/node_modules" node "$HERE/gen_jwt_vectors.js" "$W"
} >"$W/tokens.txt"

# --- jwt_vectors.h ---------------------------------------------------------

OSSL_V=$(openssl version | cut -d' ' -f1,2)
JWT_V=$(NODE_PATH="$JWTGEN_DIR/node_modules" \
    node -p "require('jsonwebtoken/package.json').version")
{
    cat <<EOF
/*
 * jwt_vectors.h - JWT test vectors for check_jwt.c
 *
 * GENERATED by tests/unit/gen_jwt_vectors.sh ($OSSL_V, node $(node -v),
 * jsonwebtoken $JWT_V); do not edit, run the script again.  Keys are public
 * halves only; rfc_* tokens and keys are RFC 7515 appendix A.1-A.3.  Tokens
 * are valid at JWTV_NOW unless their name says otherwise.
 */
#ifndef SC_JWT_VECTORS_H
#define SC_JWT_VECTORS_H

#define JWTV_NOW 1700000000

/* HMAC secret: these ASCII bytes, without a NUL */
static const char jwtv_secret[] =
    "$(printf '%s' "$SECRET" | cut -c1-32)"
    "$(printf '%s' "$SECRET" | cut -c33-)";

/* RFC 7515 A.1.1 HMAC key, base64url */
static const char jwtv_rfc_a1_key[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUu"
    "TwjAzZr1Z9CAow";

EOF
    emit_pem jwtv_rsa_pub "$W/rsa.pub"
    emit_pem jwtv_rsa_cert "$W/rsa_cert.pem"
    emit_pem jwtv_rsa_other_pub "$W/rsa_other.pub"
    emit_pem jwtv_rsa1024_pub "$W/rsa1024.pub"
    emit_pem jwtv_ec256_pub "$W/ec256.pub"
    emit_pem jwtv_ec384_pub "$W/ec384.pub"
    emit_pem jwtv_ec521_pub "$W/ec521.pub"
    emit_pem jwtv_ed25519_pub "$W/ed25519.pub"
    emit_pem jwtv_rfc_a2_pub "$W/rfc_a2.pub"
    emit_pem jwtv_rfc_a3_pub "$W/rfc_a3.pub"
    cat <<EOF
struct jwtv_token {
    const char *name;
    const char *token;
};

static const struct jwtv_token jwtv_tokens[] = {
EOF
    while read -r name token; do
        printf '    {"%s",\n' "$name"
        printf '%s\n' "$token" | fold -w 68 | sed 's/^/     "/; s/$/"/'
        printf '    },\n'
    done <"$W/tokens.txt"
    cat <<EOF
};

#endif /* SC_JWT_VECTORS_H */
EOF
} >"$W/jwt_vectors.h"
# the repository's .clang-format, as for hand-written files
if command -v clang-format >/dev/null; then
    clang-format --assume-filename="$OUT" <"$W/jwt_vectors.h" >"$OUT"
else
    mv "$W/jwt_vectors.h" "$OUT"
fi

# --- fuzz seeds (format: see tests/fuzz/fuzz_jwt.c) -------------------------
# byte 0: key set (0 secret+P-256, 1 RSA, 2 P-384 | mode 3 claims, 4 PEM);
# byte 1: options (bit 0 issuer, bit 1 audience, bits 2-4 leeway).

# seed_raw MODE NAME TEXT
seed_raw() {
    { printf '%b' "\\0$(printf '%o' "$1")\\017"; printf '%s' "$3"; } \
        >"$SEEDS/$2"
}
mkdir -p "$SEEDS"
rm -f "$SEEDS"/*
while read -r name token; do
    case $name in
    rfc_*) continue ;;
    *_rs* | *confusion | node_iss_aud | node_sub_numeric | node_ps256) m=1 ;;
    *_es384 | node_jti) m=2 ;;
    *) m=0 ;;
    esac
    seed_raw "$m" "$name" "$token"
done <"$W/tokens.txt"
seed_raw 3 claims_full '{"sub":"u","iss":"booking-api","aud":["x","seatcast"],'\
'"exp":4102444800.5,"nbf":1,"jti":"j","events":[1,"2",3]}'
seed_raw 3 claims_numeric '{"userId":null,"id":-42,"events":[]}'
seed_raw 3 claims_dup '{"sub":"a","sub":"b"}'
seed_raw 4 pem_ec256 "$(cat "$W/ec256.pub")"
seed_raw 4 pem_cert "$(cat "$W/rsa_cert.pem")"
seed_raw 4 pem_ed25519 "$(cat "$W/ed25519.pub")"
echo "wrote $OUT and $(find "$SEEDS" -type f | wc -l) seeds in $SEEDS"
