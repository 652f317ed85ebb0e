// Verifies compact JWS tokens (one per line in a file) with npm `jose`, fetching the JWKS over
// HTTP. Usage: node verify_jose.mjs <jwks_url> <tokens_file> <issuer> [audience]
// The header's typ must be SIGNET_EXPECT_TYP (default JWT), which jose checks itself. With
// SIGNET_DECRYPT_KEY (a file holding a private JWK) each token is a nested token: a JWE to that key
// (its cty JWT, its alg SIGNET_EXPECT_JWE_ALG, its enc SIGNET_EXPECT_JWE_ENC, default A256GCM)
// holding the JWS, which jose decrypts, then verifies. Prints {"library","verified","failed","failures"} and exits 0 only if every token verified.
import { webcrypto } from "node:crypto";
import { readFileSync } from "node:fs";
import { compactDecrypt, createRemoteJWKSet, importJWK, jwtVerify } from "jose";

// jose 6 uses the global WebCrypto API, which Node 18 (Debian 12's nodejs) only has behind a flag.
globalThis.crypto ??= webcrypto;

const [jwksUrl, tokensFile, issuer, audience] = process.argv.slice(2);
if (!jwksUrl || !tokensFile || !issuer) {
  console.error("usage: node verify_jose.mjs <jwks_url> <tokens_file> <issuer> [audience]");
  process.exit(2);
}
const tokens = readFileSync(tokensFile, "utf8").split("\n").map((t) => t.trim()).filter(Boolean);
const jwks = createRemoteJWKSet(new URL(jwksUrl));
// Same checks as verify_pyjwt.py: the algorithm allow-list, iss (and aud if given), exp and iat.
const typ = process.env.SIGNET_EXPECT_TYP ?? "JWT";
const options = {
  issuer,
  typ,
  algorithms: ["ES256", "ES384", "RS256", "PS256", "Ed25519", "EdDSA"],
  requiredClaims: ["exp", "iat"],
};
if (audience) options.audience = audience;

const decryptKey = process.env.SIGNET_DECRYPT_KEY;
const jwe = decryptKey && {
  key: await importJWK(JSON.parse(readFileSync(decryptKey, "utf8")), process.env.SIGNET_EXPECT_JWE_ALG),
  options: {
    keyManagementAlgorithms: [process.env.SIGNET_EXPECT_JWE_ALG],
    contentEncryptionAlgorithms: [process.env.SIGNET_EXPECT_JWE_ENC ?? "A256GCM"],
  },
};

// The JWS in a nested token, or the token itself.
async function signed(token) {
  if (!jwe) return token;
  const { plaintext, protectedHeader } = await compactDecrypt(token, jwe.key, jwe.options);
  if (protectedHeader.cty !== "JWT") {
    throw new Error(`not a nested token: ${JSON.stringify(protectedHeader)}`);
  }
  return new TextDecoder().decode(plaintext);
}

let verified = 0;
const failures = [];
for (const [index, token] of tokens.entries()) {
  try {
    const { protectedHeader } = await jwtVerify(await signed(token), jwks, options);
    if (!protectedHeader.kid || protectedHeader.typ !== typ) {
      throw new Error(`unexpected header ${JSON.stringify(protectedHeader)}`);
    }
    verified += 1;
  } catch (error) {
    failures.push({ index, error: `${error.code ?? error.name}: ${error.message}` });
  }
}
console.log(JSON.stringify({ library: "jose", verified, failed: failures.length, failures: failures.slice(0, 20) }));
process.exit(failures.length === 0 && verified > 0 ? 0 : 1);
