// The agent bundles VMs download at boot (scripts/bundle-agent.ts builds them), served on any host
// and without authentication: a VM fetches its bundle before it holds any credential, and checks
// it against the sha256 its startup payload names. Only names the directory's manifest lists are
// served, so no request can reach another file:
//   GET|HEAD /.gitspaces/agent/<version>/<file>          the tarball (ETag = its sha256)
//   GET|HEAD /.gitspaces/agent/<version>/<file>.sha256   `<sha256>  <file>` (sha256sum -c)
//   GET|HEAD /.gitspaces/agent/<version>/manifest.json   the BundleManifest
// The directory is a build's output (`manifest.json` next to the tarballs, for its one version), or
// holds one such directory per version (`<dir>/<version>/manifest.json`) to serve several.
import { createHash } from 'node:crypto';
import { open, readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { AGENT_BUNDLE_PATH, BUNDLE_ARCHES, type BundleManifest } from '../api/index.ts';
import type { Logger } from '../runtime/log.ts';
import { plain } from './pages.ts';

/** What every bundle path starts with: the gateway's one check per request. */
export const AGENT_BUNDLE_PREFIX = `${AGENT_BUNDLE_PATH}/`;

const IMMUTABLE = 'public, max-age=31536000, immutable';
const VERSION = /^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$/;
const FILE = /^[0-9A-Za-z][0-9A-Za-z._+-]{0,199}$/;
const SHA256 = /^[0-9a-f]{64}$/;

type Entry = { file: string; sha256: string; size: number };

/** A manifest as read from disk: only well-formed entries whose names are plain file names. */
function parseManifest(text: string): BundleManifest | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as { version?: unknown; files?: unknown };
  if (typeof m.version !== 'string' || typeof m.files !== 'object' || m.files === null) return undefined;
  const files: BundleManifest['files'] = {};
  for (const arch of BUNDLE_ARCHES) {
    const e = (m.files as Record<string, unknown>)[arch] as Partial<Entry> | undefined;
    if (e && typeof e.file === 'string' && FILE.test(e.file) && !e.file.includes('..') && typeof e.sha256 === 'string' && SHA256.test(e.sha256)
      && typeof e.size === 'number' && Number.isSafeInteger(e.size) && e.size >= 0) files[arch] = { file: e.file, sha256: e.sha256, size: e.size };
  }
  return { version: m.version, files };
}

export class AgentBundles {
  readonly dir: string;
  private readonly log: Logger | undefined;

  constructor(dir: string, log?: Logger) {
    this.dir = dir;
    this.log = log;
  }

  /** The manifest for `version` and the directory its files are in, if this gateway has it. */
  async manifest(version: string): Promise<{ manifest: BundleManifest; dir: string } | undefined> {
    if (!VERSION.test(version) || version.includes('..')) return undefined;
    for (const dir of [join(this.dir, version), this.dir]) {
      let text: string;
      try {
        text = await readFile(join(dir, 'manifest.json'), 'utf8');
      } catch {
        continue;
      }
      const manifest = parseManifest(text);
      if (manifest?.version === version) return { manifest, dir };
    }
    return undefined;
  }

  /** The versions the directory holds (for the start-up log line). */
  async versions(): Promise<string[]> {
    const read = (dir: string) => readFile(join(dir, 'manifest.json'), 'utf8').then(parseManifest, () => undefined);
    const subdirs = await readdir(this.dir, { withFileTypes: true }).catch(() => []);
    const found = await Promise.all([this.dir, ...subdirs.filter((d) => d.isDirectory()).map((d) => join(this.dir, d.name))].map(read));
    return [...new Set(found.flatMap((m) => (m ? [m.version] : [])))].sort();
  }

  /** Answers a request whose path starts with AGENT_BUNDLE_PREFIX. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    this.serve(req, res).catch((e: unknown) => {
      this.log?.warn('agent bundle request failed', { error: e });
      if (res.headersSent) res.destroy();
      else plain(res, 500, 'cannot read the agent bundle');
    });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      plain(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
      return;
    }
    const path = (req.url ?? '').split('?')[0] ?? '';
    const parts = path.startsWith(AGENT_BUNDLE_PREFIX) ? path.slice(AGENT_BUNDLE_PREFIX.length).split('/') : [];
    const [version = '', name = ''] = parts;
    const found = parts.length === 2 && FILE.test(name) ? await this.manifest(version) : undefined;
    if (!found) {
      notFound(res);
      return;
    }
    const { manifest, dir } = found;
    if (name === 'manifest.json') {
      const body = `${JSON.stringify(manifest, null, 2)}\n`;
      // The same version may gain an architecture later: a short cache, revalidated by ETag.
      send(req, res, body, 'application/json', createHash('sha256').update(body).digest('hex'), 'public, max-age=300');
      return;
    }
    const entries = Object.values(manifest.files);
    const sum = entries.find((e) => `${e.file}.sha256` === name);
    if (sum) {
      send(req, res, `${sum.sha256}  ${sum.file}\n`, 'text/plain; charset=utf-8', createHash('sha256').update(sum.sha256).digest('hex'), IMMUTABLE);
      return;
    }
    const entry = entries.find((e) => e.file === name);
    if (!entry) {
      notFound(res);
      return;
    }
    const etag = `"${entry.sha256}"`;
    if (notModified(req, res, etag, IMMUTABLE)) return;
    const fh = await open(join(dir, entry.file), 'r').catch(() => undefined);
    if (!fh) {
      this.log?.warn('an agent bundle the manifest lists is missing', { dir, file: entry.file });
      notFound(res);
      return;
    }
    try {
      const { size } = await fh.stat();
      if (size !== entry.size) {
        this.log?.warn('an agent bundle is not the size its manifest says', { dir, file: entry.file, size, manifest: entry.size });
        plain(res, 503, 'the agent bundle is being replaced; try again', { 'retry-after': '10' });
        return;
      }
      res.writeHead(200, {
        'content-type': 'application/gzip', 'content-length': size, 'cache-control': IMMUTABLE, etag, 'x-content-type-options': 'nosniff',
      });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      // A client that goes away mid-download is no error of ours.
      await pipeline(fh.createReadStream({ autoClose: false }), res).catch(() => {
        res.destroy();
      });
    } finally {
      await fh.close();
    }
  }
}

function notFound(res: ServerResponse): void {
  plain(res, 404, 'no such agent bundle');
}

/** 304 when the client has this ETag already. */
function notModified(req: IncomingMessage, res: ServerResponse, etag: string, cache: string): boolean {
  const inm = req.headers['if-none-match'];
  if (!inm || !inm.split(',').map((t) => t.trim().replace(/^W\//, '')).some((t) => t === etag || t === '*')) return false;
  res.writeHead(304, { etag, 'cache-control': cache });
  res.end();
  return true;
}

function send(req: IncomingMessage, res: ServerResponse, body: string, type: string, sha: string, cache: string): void {
  const etag = `"${sha}"`;
  if (notModified(req, res, etag, cache)) return;
  res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': cache, etag, 'x-content-type-options': 'nosniff' });
  res.end(req.method === 'HEAD' ? undefined : body);
}
