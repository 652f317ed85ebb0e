"""Verifies signet's tokens with PyJWT (see verifier.py for the command line)."""

import sys

import jwt
from jwt.algorithms import OKPAlgorithm

from verifier import ALGORITHMS, run

# PyJWT 2.15 knows Ed25519 only as EdDSA (RFC 8037); RFC 9864 names it Ed25519. Teach it the name
# through its own registry: the same OKP verification, under the fully-specified name.
jwt.register_algorithm("Ed25519", OKPAlgorithm())


def make_verify(jwks, issuer, audience):
    keys = {key["kid"]: key for key in jwks["keys"]}
    options = {"require": ["exp", "iat", "iss"]}
    if audience is None:
        options["verify_aud"] = False

    def verify(token):
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        jwk = keys[header["kid"]]
        if alg not in ALGORITHMS or jwk.get("alg") != alg:
            raise ValueError(f"the token's alg {alg!r} is not its key's {jwk.get('alg')!r}")
        # PyJWK reads the JWK's alg against its own table, which lacks Ed25519.
        key = jwt.PyJWK(jwk, algorithm="EdDSA" if alg == "Ed25519" else alg).key
        jwt.decode(token, key, algorithms=[alg], issuer=issuer, audience=audience, options=options)
        return header

    return verify


if __name__ == "__main__":
    sys.exit(run("pyjwt", make_verify))
