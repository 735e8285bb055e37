// What the gateway answers when it does not proxy: short bodies, no stack traces, never the token.
import type { ServerResponse } from 'node:http';
import type { Phase } from '../api/index.ts';

/** Bodies the tests and clients see for the gateway's own refusals. */
export const MESSAGES = {
  noHopKey: 'the gateway is not ready: the operator has not created its hop key yet',
  crossOrigin: 'cross-origin request refused',
  preflight: 'this port does not answer cross-origin requests',
  busy: 'the gateway has too many connections; try again',
  notOnThisHost: 'not found',
} as const;

const TEXT: Record<number, string> = {
  400: 'bad request',
  401: 'a valid access token is required',
  403: 'this Gitspace belongs to someone else',
  404: 'no such Gitspace',
  429: 'too many failed attempts; try again later',
  502: 'the Gitspace did not answer',
  503: 'the Gitspace is not running',
};

export function plain(res: ServerResponse, status: number, message = TEXT[status] ?? 'error', headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${message}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
  res.end(body);
}

/** 503 with Retry-After and a small page saying whether the Gitspace is starting or stopped. */
export function notRunning(res: ServerResponse, name: string, phase: Phase): void {
  const starting = ['Pending', 'Provisioning', 'Starting'].includes(phase);
  const what = starting ? 'is starting' : phase === 'Failed' ? 'has failed; see its status' : phase === 'Deleting' ? 'is being deleted' : 'is stopped; start it to use it';
  const body = `<!doctype html><meta charset="utf-8"><title>${name}</title><meta http-equiv="refresh" content="5"><p>Gitspace <b>${name}</b> ${what} (${phase}).</p>\n`;
  res.writeHead(503, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'retry-after': starting ? '5' : '30', 'cache-control': 'no-store' });
  res.end(body);
}

/** Refuses an upgrade on the raw socket. */
export function refuseUpgrade(socket: { end(s: string): void; destroyed: boolean }, status: number, message = TEXT[status] ?? 'error'): void {
  if (socket.destroyed) return;
  const body = `${message}\n`;
  socket.end(`HTTP/1.1 ${status} ${TEXT[status] ?? 'error'}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
