// The benchmark's upstream: a 64-byte page, a 64 KiB page and a WebSocket echo — a stand-in for an
// agent that costs as little as possible, so the proxies in front of it are what is measured.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

const small = Buffer.alloc(64, 'a');
const big = Buffer.alloc(64 * 1024, 'b');
const server = createServer((req, res) => {
  const body = req.url?.startsWith('/big') ? big : small;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
const wss = new WebSocketServer({ server, path: '/ws' });
wss.on('connection', (ws) => {
  ws.on('message', (d: Buffer, binary: boolean) => {
    ws.send(d, { binary });
  });
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
