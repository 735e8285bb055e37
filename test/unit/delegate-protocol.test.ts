// The OpenAPI file and the control plane agree: every documented delegate call exists (it answers
// 401 to a wrong token, not 404); a call that is not documented does not.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ControlPlane } from '../../src/controlplane/server.ts';
import { ROOT } from '../support/resources.ts';

describe('delegate protocol document', () => {
  it('documents the delegate calls the control plane serves', async () => {
    const doc = parse(readFileSync(join(ROOT, 'docs/delegate-protocol.openapi.yaml'), 'utf8')) as { paths: Record<string, Record<string, unknown>> };
    const dir = mkdtempSync(join(tmpdir(), 'gitspaces-cp-'));
    const cp = new ControlPlane({ dbPath: join(dir, 'cp.db'), port: 0, address: '127.0.0.1', issuer: 'http://127.0.0.1', delegateToken: 'right-delegate-token', users: {} });
    await cp.start();
    try {
      const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
      expect(documented).to.have.length(7);
      for (const op of documented) {
        const [method = 'GET', path = ''] = op.split(' ');
        const r = await fetch(`http://127.0.0.1:${cp.port}${path.replace('{id}', 't-x')}`, { method, headers: { authorization: 'Bearer wrong' } });
        expect(r.status, op).to.equal(401);
      }
      const undocumented = await fetch(`http://127.0.0.1:${cp.port}/api/delegate/v1/nope`, { method: 'POST', headers: { authorization: 'Bearer wrong' } });
      expect(undocumented.status).to.equal(404);
    } finally {
      await cp.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves the protocol over TLS when given a certificate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gitspaces-cp-tls-'));
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'k'), '-out', join(dir, 'c')], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    const cert = readFileSync(join(dir, 'c'), 'utf8');
    const cp = new ControlPlane({ dbPath: join(dir, 'cp.db'), port: 0, address: '127.0.0.1', issuer: 'https://127.0.0.1', delegateToken: 'right-delegate-token', users: {}, tls: { cert, key: readFileSync(join(dir, 'k'), 'utf8') } });
    await cp.start();
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const q = httpsRequest({ host: '127.0.0.1', port: cp.port, path: '/api/delegate/v1/tasks?wait=0', headers: { authorization: 'Bearer right-delegate-token' }, ca: cert }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        q.on('error', reject);
        q.end();
      });
      expect(status).to.equal(200);
    } finally {
      await cp.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
