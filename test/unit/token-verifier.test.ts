// The verified-token cache is per version of a static key set: a key removed from the Secret stops
// a token it signed, although that token was verified (and cached) before.
import { expect } from 'chai';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { AuthError, TokenVerifier, type IssuerConfig } from '../../src/gateway/auth.ts';

describe('TokenVerifier with a static key set', () => {
  it('verifies again when the key set changes version, and refuses a token whose key was removed', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://issuer.example').setAudience('gitspaces')
      .setSubject('alice').setIssuedAt().setExpirationTime('10m').sign(privateKey);
    const base = { issuer: 'https://issuer.example', audience: 'gitspaces' };
    const v1: IssuerConfig = { ...base, keys: { keys: [jwk] }, keysVersion: 'ns/jwks/jwks.json@1' };
    const v2: IssuerConfig = { ...base, keys: { keys: [] }, keysVersion: 'ns/jwks/jwks.json@2' };
    const verifier = new TokenVerifier();

    expect((await verifier.verify(token, v1)).sub).to.equal('alice');
    expect((await verifier.verify(token, v1)).sub).to.equal('alice'); // cached
    const refused = await verifier.verify(token, v2).then(() => undefined, (e: unknown) => e);
    expect(refused).to.be.instanceOf(AuthError);
    expect((refused as AuthError).reason).to.equal('unknown_key');
  });
});
