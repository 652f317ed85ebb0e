"""Verifies signet's tokens with joserfc (see verifier.py for the command line)."""

import sys
import warnings

from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from verifier import ALGORITHMS, run


def make_verify(jwks, issuer, audience):
    keys = KeySet.import_key_set(jwks)
    claims = {"iss": {"essential": True, "value": issuer}, "exp": {"essential": True}, "iat": {"essential": True}}
    if audience is not None:
        claims["aud"] = {"essential": True, "value": audience}
    registry = JWTClaimsRegistry(**claims)

    def verify(token):
        # joserfc warns that EdDSA is deprecated (RFC 9864): rings created under that name keep
        # it, and their tokens verify all the same.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        registry.validate(decoded.claims)
        return decoded.header

    return verify


if __name__ == "__main__":
    sys.exit(run("joserfc", make_verify))
