"""Encrypts tokens to an encryption ring with jwcrypto, as a sender does: it takes the first key
of the ring's JWKS (the one senders should use), with that key's alg and kid.

Usage: python encrypt_jwcrypto.py <jwks.json> <enc> <count>. Prints one compact JWE per line,
each carrying the claims {"sub": "user-<i>", "i": <i>, "sender": "jwcrypto"}.
"""

import json
import sys

from jwcrypto import jwe, jwk


def main(path, enc, count):
    with open(path, encoding="utf-8") as f:
        first = json.load(f)["keys"][0]
    if first.get("use") != "enc":
        print(f"the first key of the JWKS is not for encryption: {first}", file=sys.stderr)
        return 1
    key = jwk.JWK(**first)
    header = {"alg": first["alg"], "enc": enc, "kid": first["kid"]}
    for i in range(int(count)):
        claims = json.dumps({"sub": f"user-{i}", "i": i, "sender": "jwcrypto"})
        token = jwe.JWE(claims.encode(), protected=json.dumps(header))
        token.add_recipient(key)
        print(token.serialize(compact=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
