"""Verifies compact JWS tokens (one per line in a file) with PyJWT, fetching the JWKS over HTTP.

Usage: python verify_pyjwt.py <jwks_url> <tokens_file> <issuer> [audience]
Prints {"library","verified","failed","failures"} and exits 0 only if every token verified.
"""

import json
import sys

import jwt

ALGORITHMS = {"ES256", "ES384", "RS256", "PS256", "EdDSA"}


def main() -> int:
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    jwks_url, tokens_file, issuer = sys.argv[1:4]
    audience = sys.argv[4] if len(sys.argv) == 5 else None
    with open(tokens_file, encoding="utf-8") as f:
        tokens = [line.strip() for line in f if line.strip()]
    client = jwt.PyJWKClient(jwks_url, cache_keys=True)
    verified, failures = 0, []
    for index, token in enumerate(tokens):
        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            if alg not in ALGORITHMS:
                raise ValueError(f"unexpected alg {alg!r}")
            if not header.get("kid") or header.get("typ") != "JWT":
                raise ValueError(f"unexpected header {header!r}")
            key = client.get_signing_key_from_jwt(token)
            options = {"require": ["exp", "iat", "iss"]}
            if audience is None:
                options["verify_aud"] = False
            jwt.decode(token, key, algorithms=[alg], issuer=issuer, audience=audience, options=options)
            verified += 1
        except Exception as error:  # every failure is reported, whatever raised it
            failures.append({"index": index, "error": f"{type(error).__name__}: {error}"})
    print(json.dumps({"library": "pyjwt", "verified": verified, "failed": len(failures), "failures": failures[:20]}))
    return 0 if not failures and verified > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
