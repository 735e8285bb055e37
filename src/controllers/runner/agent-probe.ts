// Asks a VM's agent how it is (GET /healthz with the per-Gitspace secret).
import { request } from 'node:http';
import { SECRET_HEADER, type AgentHealth } from '../../api/index.ts';

export type ProbeResult = { ok: true; health: AgentHealth } | { ok: false; error: string };

export type AgentProbe = (address: string, port: number, secret: string) => Promise<ProbeResult>;

export const probeAgent: AgentProbe = (address, port, secret) =>
  new Promise((resolve) => {
    const req = request({ host: address, port, path: '/healthz', headers: { [SECRET_HEADER]: secret }, timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) {
          resolve({ ok: false, error: `agent answered ${res.statusCode ?? 0}` });
          return;
        }
        try {
          resolve({ ok: true, health: JSON.parse(body) as AgentHealth });
        } catch {
          resolve({ ok: false, error: 'agent answered with something that is not JSON' });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => {
      resolve({ ok: false, error: e.message });
    });
    req.end();
  });
