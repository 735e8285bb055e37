// A request body the agent reads (a claim, a rebuild token): whole, up to a size cap and within a
// deadline, so a client that drips or floods cannot hold the agent or grow its memory.
import type { IncomingMessage } from 'node:http';

/** `what` names the body in the errors ("<what> body too slow", "<what> too large"). */
export function readBody(req: IncomingMessage, o: { maxBytes: number; timeoutMs: number; what: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      reject(new Error(`${o.what} body too slow`));
      req.destroy();
    }, o.timeoutMs);
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > o.maxBytes) {
        clearTimeout(timer);
        reject(new Error(`${o.what} too large`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}
