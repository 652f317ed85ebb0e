// Encrypts tokens to an encryption ring with npm `jose`, as a sender does: it takes the first key
// of the ring's JWKS (the one senders should use), with that key's `alg` and `kid`.
// Usage: node encrypt_jose.mjs <jwks.json> <enc> <count>. Prints one compact JWE per line, each
// carrying the claims {"sub": "user-<i>", "i": <i>, "sender": "jose"}.
import { readFileSync } from "node:fs";
import { webcrypto } from "node:crypto";
import { EncryptJWT, importJWK } from "jose";

globalThis.crypto ??= webcrypto;

const [file, enc, count] = process.argv.slice(2);
if (!count) {
  console.error("usage: node encrypt_jose.mjs <jwks.json> <enc> <count>");
  process.exit(2);
}
const jwk = JSON.parse(readFileSync(file, "utf8")).keys[0];
if (jwk.use !== "enc") {
  console.error(`the first key of the JWKS is not for encryption: ${JSON.stringify(jwk)}`);
  process.exit(1);
}
const key = await importJWK(jwk, jwk.alg);
const tokens = [];
for (let i = 0; i < Number(count); i++) {
  tokens.push(
    await new EncryptJWT({ sub: `user-${i}`, i, sender: "jose" })
      .setProtectedHeader({ alg: jwk.alg, enc, kid: jwk.kid })
      .encrypt(key),
  );
}
console.log(tokens.join("\n"));
