// Checks on a request before any routing or authentication: its shape, and what kind of request it is.
import type { IncomingMessage } from 'node:http';

/** A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method. */
export function isPreflight(req: IncomingMessage): boolean {
  return req.method === 'OPTIONS' && req.headers.origin !== undefined && req.headers['access-control-request-method'] !== undefined;
}

/** Methods a cross-site form or fetch could use to change something. */
export function unsafe(method: string | undefined): boolean {
  return !['GET', 'HEAD', 'OPTIONS'].includes(method ?? 'GET');
}

/**
 * The request must have one Host and an origin-form target without traversal or encoded
 * separators: anything else is a client trying to confuse routing.
 */
export function badRequest(req: IncomingMessage): boolean {
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]?.toLowerCase() === 'host') hosts++;
  return hosts !== 1 || badTarget(req.url);
}

function badTarget(url: string | undefined): boolean {
  if (!url?.startsWith('/') || url.startsWith('//')) return true;
  const path = url.split('?')[0] ?? '';
  if (/%2f|%5c|%00|\\/i.test(path)) return true;
  const decoded = path.replace(/%2e/gi, '.');
  return decoded.split('/').some((seg) => seg === '..' || seg === '.');
}
