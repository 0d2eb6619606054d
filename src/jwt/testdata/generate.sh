#!/bin/sh
# Regenerates the jwt unit-test keys (test-only material, never used outside tests).
# rsa.pem / ec_p256.pem sign the tokens of issuer "idp"; their public halves are in
# jwks.json (kids "rsa-1", "ec-1"). rsa_other.pem is an unrelated key ("other-1" in
# jwks_other.json) for wrong-key and other-issuer cases. hmac.secret is the HS256
# secret of the "mixed" test issuer.
set -eu
cd "$(dirname "$0")"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem
openssl pkey -in rsa.pem -pubout -out rsa.pub.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec_p256.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa_other.pem
openssl rand -hex 32 > hmac.secret
python3 - <<'PY'
import base64, json, re, subprocess

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def der_hex(text, label):
    m = re.search(label + r":\s*\n((?:\s+[0-9a-f:]+\n)+)", text)
    return bytes.fromhex(re.sub(r"[\s:]", "", m.group(1)))

def rsa_jwk(path, kid):
    text = subprocess.run(["openssl", "pkey", "-in", path, "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    n = der_hex(text, "modulus").lstrip(b"\0")
    e = int(re.search(r"publicExponent: (\d+)", text).group(1))
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64(n), "e": b64(e.to_bytes((e.bit_length() + 7) // 8, "big"))}

def ec_jwk(path, kid):
    text = subprocess.run(["openssl", "pkey", "-in", path, "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    pub = der_hex(text, "pub")
    return {"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256",
            "x": b64(pub[1:33]), "y": b64(pub[33:65])}

with open("jwks.json", "w") as f:
    json.dump({"keys": [rsa_jwk("rsa.pem", "rsa-1"), ec_jwk("ec_p256.pem", "ec-1")]}, f, indent=2)
    f.write("\n")
with open("jwks_other.json", "w") as f:
    json.dump({"keys": [rsa_jwk("rsa_other.pem", "other-1")]}, f, indent=2)
    f.write("\n")
PY
