// How the GCE fake answers: JSON bodies, and errors in the shape googleapis sends them (the
// client reads `error.errors[0].reason` and the domain to tell throttling from other failures).
import type { ServerResponse } from 'node:http';

/** Every selfLink and targetLink starts here, as in GCE. */
export const BASE = 'https://www.googleapis.com/compute/v1';

export function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json; charset=UTF-8' });
  res.end(JSON.stringify(body));
}

export function error(res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { error: { code, message, errors: [{ message, domain: code === 403 || code === 429 ? 'usageLimits' : 'global', reason }] } });
}

export function notFound(res: ServerResponse, what: string): void {
  error(res, 404, 'notFound', `The resource '${what}' was not found`);
}
