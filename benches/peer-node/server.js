// The server a team would hand-roll instead of signet: fastify and panva's jose, the ES256 key in
// process, a static bearer token, no audit and no policy beyond iss/iat/exp/jti. The benchmark's
// peer (scripts/bench): PEER_PORT, PEER_TOKEN, PEER_WORKERS (1 = one process; more = node:cluster).
'use strict';
const cluster = require('node:cluster');
const crypto = require('node:crypto');

const port = Number(process.env.PEER_PORT || 8090);
const workers = Number(process.env.PEER_WORKERS || 1);
const token = Buffer.from(process.env.PEER_TOKEN || 'peer-token');

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  main();
}

async function main() {
  const { SignJWT, generateKeyPair, exportJWK, calculateJwkThumbprint } = await import('jose');
  const fastify = require('fastify')({ logger: false });
  // Every worker has its own key: enough for a throughput peer.
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  const authorized = (header) => {
    const given = Buffer.from((header || '').replace(/^Bearer /, ''));
    return given.length === token.length && crypto.timingSafeEqual(given, token);
  };
  fastify.post('/sign', async (request, reply) => {
    if (!authorized(request.headers.authorization)) {
      return reply.code(401).send({ error: 'unauthenticated' });
    }
    const { claims, ttl_seconds: ttl = 300 } = request.body || {};
    if (typeof claims !== 'object' || claims === null) {
      return reply.code(400).send({ error: 'invalid_request' });
    }
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
      .setIssuer('https://bench.example')
      .setIssuedAt(now)
      .setExpirationTime(now + ttl)
      .setJti(crypto.randomBytes(16).toString('base64url'))
      .sign(privateKey);
    return { token: jwt, kid, expires_at: now + ttl };
  });
  fastify.get('/jwks.json', async () => ({ keys: [{ ...jwk, kid, alg: 'ES256', use: 'sig' }] }));
  await fastify.listen({ port, host: '127.0.0.1' });
}
