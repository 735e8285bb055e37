// The agent bundle: its names (src/api/bundle.ts), how the build finds what to put in it
// (scripts/bundle-agent.ts), and how the gateway serves it (src/gateway/agent-bundles.ts): without
// authentication, on any host, before routing, and nothing but what the manifest lists.
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_BUNDLE_PATH, bundleFileName, bundleURL, type BundleManifest, type Gitspace } from '../../src/api/index.ts';
import { AgentBundles } from '../../src/gateway/agent-bundles.ts';
import { Gateway } from '../../src/gateway/server.ts';
import type { KubeClient, KubeList, KubeObject } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { dependencyProject, importedPackages, lockClosure, readLock, WRAPPER } from '../../scripts/bundle-agent.ts';

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

function send(port: number, path: string, o: { method?: string; host?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: o.method ?? 'GET', headers: { host: o.host ?? 'gateway.internal', ...o.headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('agent bundle', () => {
  describe('names (src/api/bundle.ts)', () => {
    it('names files and URLs by version and architecture', () => {
      expect(AGENT_BUNDLE_PATH).to.equal('/.gitspaces/agent');
      expect(bundleFileName('0.1.0', 'x64')).to.equal('gitspaces-agent-0.1.0-linux-x64.tar.gz');
      expect(bundleFileName('0.1.0', 'arm64')).to.equal('gitspaces-agent-0.1.0-linux-arm64.tar.gz');
      expect(bundleURL('https://gw.example.com/.gitspaces/agent/', '0.1.0', 'arm64')).to.equal('https://gw.example.com/.gitspaces/agent/0.1.0/gitspaces-agent-0.1.0-linux-arm64.tar.gz');
      expect(bundleURL('http://10.0.0.2:8080/.gitspaces/agent', '1.2.3', 'x64')).to.equal('http://10.0.0.2:8080/.gitspaces/agent/1.2.3/gitspaces-agent-1.2.3-linux-x64.tar.gz');
    });
  });

  describe('build inputs (scripts/bundle-agent.ts)', () => {
    let lib: string;
    before(() => {
      lib = mkdtempSync(join(tmpdir(), 'gitspaces-bundle-lib-'));
      mkdirSync(join(lib, 'agent'));
      mkdirSync(join(lib, 'api'));
      writeFileSync(join(lib, 'agent/main.js'), [
        "import { a } from './a.js';",
        "import * as api from '../api/index.js';",
        "import { spawn } from 'node:child_process';",
        "import fs from 'fs';",
        "// import x from 'in-a-comment';",
        "const s = \"import y from 'in-a-string'\";",
        "await import('ws');",
      ].join('\n'));
      writeFileSync(join(lib, 'agent/a.js'), "import ssh2 from 'ssh2';\nimport { x } from '@scope/pkg/sub/path.js';\nexport const a = 1;\n");
      writeFileSync(join(lib, 'agent/helper.js'), "const m = require('yaml/dist');\n"); // run by path, imported by nobody
      writeFileSync(join(lib, 'api/index.js'), "export * from './agent.js';\n");
      writeFileSync(join(lib, 'api/agent.js'), 'export const A = 1;\n');
      writeFileSync(join(lib, 'api/render.js'), "import { stringify } from 'unreached';\n"); // no agent file imports it
    });
    after(() => {
      rmSync(lib, { recursive: true, force: true });
    });

    it('finds the packages the compiled agent imports: every agent file, api files as far as imported, no builtins, comments or strings', () => {
      expect(importedPackages(lib)).to.deep.equal(['@scope/pkg', 'ssh2', 'ws', 'yaml']);
    });

    it('refuses an import that leaves the bundle', () => {
      writeFileSync(join(lib, 'agent/escape.js'), "import '../../runtime/log.js';\n");
      try {
        expect(() => importedPackages(lib)).to.throw(/outside the bundle/);
      } finally {
        rmSync(join(lib, 'agent/escape.js'));
      }
    });

    it('takes ssh2 and ws with their dependencies at the lockfile\'s versions (optional ones listed, for npm to omit)', () => {
      const lock = readLock();
      const closure = lockClosure(lock, ['ssh2', 'ws']);
      for (const p of ['ssh2', 'ws', 'asn1', 'bcrypt-pbkdf', 'safer-buffer', 'tweetnacl']) {
        expect(closure, p).to.have.property(`node_modules/${p}`);
        expect(closure[`node_modules/${p}`]?.optional, p).to.not.equal(true);
        expect(closure[`node_modules/${p}`]?.version).to.equal(lock.packages[`node_modules/${p}`]?.version);
      }
      for (const p of Object.keys(closure).filter((k) => k.includes('cpu-features') || k.includes('nan'))) expect(closure[p]?.optional, p).to.equal(true);
      expect(Object.keys(closure)).to.not.include('node_modules/express');
      const project = dependencyProject(lock, ['ssh2', 'ws'], '9.9.9');
      expect(project.lock.packages['']).to.deep.equal({ name: 'gitspaces-agent', version: '9.9.9', dependencies: { ssh2: lock.packages['node_modules/ssh2']?.version, ws: lock.packages['node_modules/ws']?.version } });
      expect(() => lockClosure(lock, ['no-such-package-here'])).to.throw(/package-lock.json does not have/);
      expect(() => lockClosure(lock, ['mocha'])).to.throw(/devDependency/);
    });

    it('wraps the agent in a sh script that finds its own Node, through symlinks too', () => {
      expect(WRAPPER).to.match(/^#!\/bin\/sh\n/);
      expect(WRAPPER).to.include('readlink -f "$0"').and.include('exec "$here/node" "$here/../lib/agent/main.js" "$@"');
    });
  });

  describe('serving (src/gateway/agent-bundles.ts)', () => {
    const version = '1.2.3';
    const file = bundleFileName(version, 'x64');
    const bytes = randomBytes(300_000);
    const manifest: BundleManifest = { version, files: { x64: { file, sha256: sha256(bytes), size: bytes.length } } };
    let dir: string;
    let server: Server;
    let port: number;
    const path = (name: string, v = version) => `${AGENT_BUNDLE_PATH}/${v}/${name}`;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'gitspaces-bundles-'));
      writeFileSync(join(dir, file), bytes);
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
      writeFileSync(join(dir, 'unlisted.tar.gz'), 'not in the manifest');
      // A second version in its own directory, and one whose manifest names a file outside it.
      mkdirSync(join(dir, '2.0.0'));
      writeFileSync(join(dir, '2.0.0', bundleFileName('2.0.0', 'arm64')), 'arm');
      writeFileSync(join(dir, '2.0.0/manifest.json'), JSON.stringify({ version: '2.0.0', files: { arm64: { file: bundleFileName('2.0.0', 'arm64'), sha256: sha256('arm'), size: 3 } } }));
      mkdirSync(join(dir, '6.6.6'));
      writeFileSync(join(dir, '6.6.6/manifest.json'), JSON.stringify({ version: '6.6.6', files: { x64: { file: '../unlisted.tar.gz', sha256: sha256('x'), size: 19 } } }));
      const bundles = new AgentBundles(dir);
      server = createServer((req, res) => {
        bundles.handle(req, res);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as AddressInfo).port;
    });
    after(async () => {
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    });

    it('streams a listed bundle with its length, type, immutable caching and its sha256 as ETag', async () => {
      const r = await send(port, path(file));
      expect(r.status).to.equal(200);
      expect(r.body.equals(bytes)).to.equal(true);
      expect(sha256(r.body)).to.equal(manifest.files.x64?.sha256);
      expect(r.headers).to.include({
        'content-type': 'application/gzip', 'content-length': String(bytes.length), 'cache-control': 'public, max-age=31536000, immutable', etag: `"${sha256(bytes)}"`,
      });
    });

    it('answers HEAD with the headers and no body, and a matching If-None-Match with 304', async () => {
      const head = await send(port, path(file), { method: 'HEAD' });
      expect(head.status).to.equal(200);
      expect(head.headers['content-length']).to.equal(String(bytes.length));
      expect(head.body.length).to.equal(0);
      const again = await send(port, path(file), { headers: { 'if-none-match': `"${sha256(bytes)}"` } });
      expect(again.status).to.equal(304);
      expect(again.body.length).to.equal(0);
    });

    it('serves the sha256 (sha256sum format) and the manifest', async () => {
      const sum = await send(port, path(`${file}.sha256`));
      expect(sum.status).to.equal(200);
      expect(sum.body.toString()).to.equal(`${sha256(bytes)}  ${file}\n`);
      const m = await send(port, path('manifest.json'));
      expect(m.status).to.equal(200);
      expect(m.headers['content-type']).to.equal('application/json');
      expect(JSON.parse(m.body.toString())).to.deep.equal(manifest);
      const headSum = await send(port, path(`${file}.sha256`), { method: 'HEAD' });
      expect(headSum.status).to.equal(200);
      expect(headSum.body.length).to.equal(0);
    });

    it('serves a version from its own directory', async () => {
      const r = await send(port, path(bundleFileName('2.0.0', 'arm64'), '2.0.0'));
      expect(r.status).to.equal(200);
      expect(r.body.toString()).to.equal('arm');
      // …but not under another version's path.
      expect((await send(port, path(bundleFileName('2.0.0', 'arm64')))).status).to.equal(404);
    });

    it('answers 404, with a short body, for unknown versions, unlisted files and other paths', async () => {
      for (const p of [
        path(file, '9.9.9'), path('unlisted.tar.gz'), path(bundleFileName(version, 'arm64')), path(`${file}.sha512`), path(''), `${AGENT_BUNDLE_PATH}/${version}`,
        `${AGENT_BUNDLE_PATH}/`, `${path(file)}/extra`, path('../unreachable.tar.gz', '6.6.6'), path('unlisted.tar.gz', '6.6.6'),
      ]) {
        const r = await send(port, p);
        expect(r.status, p).to.equal(404);
        expect(r.body.length, p).to.be.below(64);
      }
    });

    it('refuses traversal, encoded or not', async () => {
      for (const p of [
        `${AGENT_BUNDLE_PATH}/${version}/../../../etc/passwd`, `${AGENT_BUNDLE_PATH}/../${version}/${file}`, `${AGENT_BUNDLE_PATH}/..%2f..%2fetc/passwd`,
        `${AGENT_BUNDLE_PATH}/%2e%2e/unlisted.tar.gz`, `${AGENT_BUNDLE_PATH}/${version}/..%2Funlisted.tar.gz`, `${AGENT_BUNDLE_PATH}/./${file}`, `${AGENT_BUNDLE_PATH}/..`,
      ]) {
        const r = await send(port, p);
        expect(r.status, p).to.equal(404);
        expect(r.body.toString(), p).to.not.include('not in the manifest');
      }
    });

    it('allows only GET and HEAD', async () => {
      const r = await send(port, path(file), { method: 'POST' });
      expect(r.status).to.equal(405);
      expect(r.headers.allow).to.equal('GET, HEAD');
    });
  });

  describe('in the gateway', () => {
    const HOST = 'app--dev.gs.example.com';
    const gitspace = {
      apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace',
      metadata: { name: 'app', namespace: 'dev', uid: 'u-1', resourceVersion: '1' },
      spec: { infraRef: { name: 'infra' }, owner: 'alice@example.com', repository: { url: 'https://example.com/r.git' } },
      status: { phase: 'Running', instance: { privateIP: '10.0.0.1' } },
    } as unknown as Gitspace;
    const infra = { apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name: 'infra', resourceVersion: '1' }, spec: { provider: { gcp: {} }, gateway: { domain: 'gs.example.com' } } };
    /** A cluster with one Running Gitspace: lists it, then watches until stopped. */
    const client = {
      list: (r: { plural: string }) => Promise.resolve({ metadata: { resourceVersion: '1' }, items: r.plural === 'gitspaces' ? [gitspace] : r.plural === 'gitspaceinfras' ? [infra] : [] } as KubeList<KubeObject>),
      watch: (_r: unknown, o: { signal?: AbortSignal }) => new Promise<void>((resolve) => o.signal?.addEventListener('abort', () => { resolve(); })),
      get: () => Promise.reject(new Error('no such object')),
    } as unknown as KubeClient;
    const bytes = randomBytes(1000);
    const file = bundleFileName('0.0.1', 'arm64');
    let dir: string;
    let gw: Gateway;
    let bare: Gateway;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'gitspaces-gw-bundles-'));
      writeFileSync(join(dir, file), bytes);
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ version: '0.0.1', files: { arm64: { file, sha256: sha256(bytes), size: bytes.length } } }));
      const log = createLogger({ component: 'gateway' }, 'error');
      gw = new Gateway({ client, log, port: 0, address: '127.0.0.1', drainDelayMs: 0, drainMs: 100, agentBundles: dir });
      bare = new Gateway({ client, log, port: 0, address: '127.0.0.1', drainDelayMs: 0, drainMs: 100 });
      await Promise.all([gw.start(), bare.start()]);
    });
    after(async () => {
      await Promise.all([gw.stop(), bare.stop()]);
      rmSync(dir, { recursive: true, force: true });
    });

    it('serves bundles without a token on any host, a Gitspace\'s too, before routing', async () => {
      expect(gw.routes.match(HOST, '/')?.target.name, 'the host is a Gitspace\'s').to.equal('app');
      expect((await send(gw.port, '/', { host: HOST })).status, 'the Gitspace itself needs a token').to.equal(401);
      for (const host of [HOST, 'gateway.internal', '10.0.0.9:8080']) {
        const r = await send(gw.port, `${AGENT_BUNDLE_PATH}/0.0.1/${file}`, { host });
        expect(r.status, host).to.equal(200);
        expect(r.body.equals(bytes), host).to.equal(true);
      }
      expect((await send(gw.port, `${AGENT_BUNDLE_PATH}/0.0.1/${file}.sha256`, { host: HOST })).body.toString()).to.equal(`${sha256(bytes)}  ${file}\n`);
      expect((await send(gw.port, `${AGENT_BUNDLE_PATH}/0.0.1/nope.tar.gz`, { host: HOST })).status).to.equal(404);
      expect((await send(gw.port, `${AGENT_BUNDLE_PATH}/0.0.1/../../x`, { host: HOST })).status).to.equal(400);
      // Other /.gitspaces/ paths on a Gitspace's host still go through authentication.
      expect((await send(gw.port, '/.gitspaces/other', { host: HOST })).status).to.equal(401);
    });

    it('answers 404 for bundle paths when it has no bundles to serve', async () => {
      for (const host of [HOST, 'gateway.internal']) expect((await send(bare.port, `${AGENT_BUNDLE_PATH}/0.0.1/${file}`, { host })).status, host).to.equal(404);
    });
  });
});
