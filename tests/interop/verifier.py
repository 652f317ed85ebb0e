"""What the Python verifiers share: the command line, the JWKS fetched over HTTP, the header check
and the report.

Usage: python verify_<library>.py <jwks_url> <tokens_file> <issuer> [audience]
The header's typ must be SIGNET_EXPECT_TYP (default JWT).
Each verifies the compact JWS tokens in the file (one per line), prints
{"library","verified","failed","failures"} and exits 0 only if every token verified.
"""

import json
import os
import sys
import urllib.request

# Every algorithm signet signs with; each verifier allows exactly these.
ALGORITHMS = ["ES256", "ES384", "RS256", "PS256", "Ed25519", "EdDSA"]


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
    typ = os.environ.get("SIGNET_EXPECT_TYP", "JWT")
    verified, failures = 0, []
    for index, token in enumerate(tokens):
        try:
            header = verify(token)
            if header.get("alg") not in ALGORITHMS or not header.get("kid") or header.get("typ") != typ:
                raise ValueError(f"unexpected header {header!r}")
            verified += 1
        except Exception as error:  # every failure is reported, whatever raised it
            failures.append({"index": index, "error": f"{type(error).__name__}: {error}"})
    print(json.dumps({"library": library, "verified": verified, "failed": len(failures), "failures": failures[:20]}))
    return 0 if not failures and verified > 0 else 1
