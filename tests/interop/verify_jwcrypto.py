"""Verifies signet's tokens with jwcrypto (see verifier.py for the command line)."""

import json
import sys

from jwcrypto import jwk, jwt

from verifier import ALGORITHMS, run


def make_verify(jwks, issuer, audience):
    keys = jwk.JWKSet.from_json(json.dumps(jwks))
    check = {"iss": issuer, "exp": None, "iat": None}
    if audience is not None:
        check["aud"] = audience

    def verify(token):
        decoded = jwt.JWT(jwt=token, key=keys, algs=ALGORITHMS, check_claims=check)
        return json.loads(decoded.header)

    return verify


if __name__ == "__main__":
    sys.exit(run("jwcrypto", make_verify))
