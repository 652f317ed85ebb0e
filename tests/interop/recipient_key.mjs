// Makes a recipient's key pair for nested tokens with npm `jose`, as a sender's recipient would.
// Usage: node recipient_key.mjs <alg> (RSA-OAEP-256, RSA-OAEP, ECDH-ES, ECDH-ES+A256KW, ...)
// [crv] (P-256 or P-384, for ECDH). Prints {"private": <JWK>, "public": <JWK>, "jkt": <RFC 7638
// thumbprint of the public JWK>}.
import { webcrypto } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from "jose";

globalThis.crypto ??= webcrypto;

const [alg, crv] = process.argv.slice(2);
if (!alg) {
  console.error("usage: node recipient_key.mjs <alg> [crv]");
  process.exit(2);
}
const { privateKey, publicKey } = await generateKeyPair(alg, { crv, extractable: true });
const publicJwk = await exportJWK(publicKey);
console.log(
  JSON.stringify({
    private: await exportJWK(privateKey),
    public: publicJwk,
    jkt: await calculateJwkThumbprint(publicJwk),
  }),
);
