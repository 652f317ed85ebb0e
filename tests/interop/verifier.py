"""What the Python verifiers share: the command line, the JWKS fetched over HTTP, the header check
and the report.

Usage: python verify_<library>.py <jwks_url> <tokens_file> <issuer> [audience]
The header's typ must be SIGNET_EXPECT_TYP (default JWT). With SIGNET_DECRYPT_KEY (a file holding a
private JWK) each token is a nested token: a JWE to that key (its cty JWT, its alg
SIGNET_EXPECT_JWE_ALG, its enc SIGNET_EXPECT_JWE_ENC, default A256GCM), which jwcrypto decrypts
before the library verifies the JWS inside.
Each verifies the compact JWS tokens in the file (one per line), prints
{"library","verified","failed","failures"} and exits 0 only if every token verified.
"""

import json
import os
import sys
import urllib.request

from jwcrypto import jwe, jwk

# Every algorithm signet signs with; each verifier allows exactly these.
ALGORITHMS = ["ES256", "ES384", "RS256", "PS256", "Ed25519", "EdDSA"]


def decrypter():
    """A function returning the JWS nested in a token, or the token itself without SIGNET_DECRYPT_KEY."""
    key_file = os.environ.get("SIGNET_DECRYPT_KEY")
    if key_file is None:
        return lambda token: token
    with open(key_file, encoding="utf-8") as f:
        key = jwk.JWK.from_json(f.read())
    algs = [os.environ["SIGNET_EXPECT_JWE_ALG"], os.environ.get("SIGNET_EXPECT_JWE_ENC", "A256GCM")]

    def signed(token):
        nested = jwe.JWE(algs=algs)
        nested.deserialize(token, key=key)
        header = json.loads(nested.objects["protected"])
        if header.get("cty") != "JWT":
            raise ValueError(f"not a nested token: {header!r}")
        return nested.payload.decode()

    return signed


def run(library, make_verify):
    """`make_verify(jwks, issuer, audience)` returns a function that verifies one token (signature,
    algorithm, iss, exp and iat required, aud when given) and returns its header, or raises."""
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    jwks_url, tokens_file, issuer = sys.argv[1:4]
    audience = sys.argv[4] if len(sys.argv) == 5 else None
    with open(tokens_file, encoding="utf-8") as f:
        tokens = [line.strip() for line in f if line.strip()]
    with urllib.request.urlopen(jwks_url) as response:
        jwks = json.load(response)
    verify = make_verify(jwks, issuer, audience)
    signed = decrypter()
    typ = os.environ.get("SIGNET_EXPECT_TYP", "JWT")
    verified, failures = 0, []
    for index, token in enumerate(tokens):
        try:
            header = verify(signed(token))
            if header.get("alg") not in ALGORITHMS or not header.get("kid") or header.get("typ") != typ:
                raise ValueError(f"unexpected header {header!r}")
            verified += 1
        except Exception as error:  # every failure is reported, whatever raised it
            failures.append({"index": index, "error": f"{type(error).__name__}: {error}"})
    print(json.dumps({"library": library, "verified": verified, "failed": len(failures), "failures": failures[:20]}))
    return 0 if not failures and verified > 0 else 1
