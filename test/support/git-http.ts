// A private git server for tests: git's "dumb HTTP" protocol (static files of a bare repository)
// behind HTTP Basic auth, on loopback. Enough for `git clone` with credentials, no CGI needed.
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';

export interface GitHttpServer {
  url: string;
  /** Authorization headers seen, to prove the client authenticated. */
  authorised: number;
  close(): Promise<void>;
}

/** `address`: where it listens (a Docker network's gateway address, for instances in containers). */
export async function serveRepoPrivately(repo: string, dir: string, user: string, token: string, address = '127.0.0.1'): Promise<GitHttpServer> {
  const bare = join(dir, 'private.git');
  execFileSync('git', ['clone', '-q', '--bare', repo, bare]);
  execFileSync('git', ['update-server-info'], { cwd: bare });
  const want = `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;
  const state = { authorised: 0 };
  const server: Server = createServer((req, res) => {
    if (req.headers.authorization !== want) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' });
      res.end('unauthorised');
      return;
    }
    state.authorised++;
    const rel = normalize(decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/')).replace(/^\/private\.git/, '');
    const file = join(bare, rel);
    if (!file.startsWith(bare) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, address, r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${address}:${String(port)}/private.git`,
    get authorised() {
      return state.authorised;
    },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => { r(); }); }),
  };
}
