// A thin fault-injecting proxy in front of moto's EC2 server: it records every EC2 action and, on
// demand, answers RequestLimitExceeded (503), InternalError (500), AuthFailure (401) or, for
// RunInstances into chosen subnets, InsufficientInstanceCapacity — the failures moto cannot produce by itself.
// It also keeps two EC2 rules moto does not: an instance type changes only while the instance is
// stopped (IncorrectInstanceState), and a volume only grows (InvalidParameterValue).
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Ec2Faults {
  throttleRate?: number;
  errorRate?: number;
  /** RunInstances into these subnets fails with InsufficientInstanceCapacity. */
  noCapacitySubnets?: Set<string>;
  /** Every call fails with AuthFailure (moto accepts any credentials). */
  unauthenticated?: boolean;
}

export class Ec2FaultProxy {
  readonly calls: { action: string; at: number; faulted?: string }[] = [];
  faults: Ec2Faults = {};
  /** Answers an action itself (an EC2 XML body) instead of moto, when it returns one. */
  answer: ((action: string, form: URLSearchParams) => Promise<string | undefined>) | undefined;
  private server: Server | undefined;
  private readonly target: URL;

  constructor(target: string) {
    this.target = new URL(target);
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const form = new URLSearchParams(body.toString('utf8'));
        const action = form.get('Action') ?? '';
        const fault = this.pick(action, form);
        this.calls.push({ action, at: Date.now(), ...(fault ? { faulted: fault[1] } : {}) });
        if (fault) {
          const [status, code] = fault;
          res.writeHead(status, { 'content-type': 'text/xml' });
          res.end(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${code}</Code><Message>injected ${code}</Message></Error></Errors><RequestID>fault-${Date.now()}</RequestID></Response>`);
          return;
        }
        void this.refusal(action, form, req.headers).then((r) => {
          if (!r) return this.answerOrForward(req, res, body, action, form);
          res.writeHead(400, { 'content-type': 'text/xml' });
          res.end(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${r[0]}</Code><Message>${r[1]}</Message></Error></Errors><RequestID>rule-${Date.now()}</RequestID></Response>`);
        }, () => { this.answerOrForward(req, res, body, action, form); });
      });
    });
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** EC2's refusal (code, message) of a resize moto would carry out, as EC2 words it. */
  private async refusal(action: string, form: URLSearchParams, headers: IncomingHttpHeaders): Promise<[string, string] | undefined> {
    const version = form.get('Version') ?? '2016-11-15';
    if (action === 'ModifyInstanceAttribute' && (form.has('InstanceType.Value') || form.get('Attribute') === 'instanceType')) {
      const id = form.get('InstanceId') ?? '';
      const xml = await this.ask(headers, { Action: 'DescribeInstances', Version: version, 'InstanceId.1': id });
      const state = /<instanceState>\s*<code>\d+<\/code>\s*<name>([a-z-]+)<\/name>/.exec(xml)?.[1];
      if (state && state !== 'stopped') return ['IncorrectInstanceState', `The instance '${id}' is not in the 'stopped' state.`];
    }
    if (action === 'ModifyVolume' && form.has('Size')) {
      const id = form.get('VolumeId') ?? '';
      const xml = await this.ask(headers, { Action: 'DescribeVolumes', Version: version, 'VolumeId.1': id });
      const size = Number(/<size>(\d+)<\/size>/.exec(xml)?.[1]);
      if (Number(form.get('Size')) < size) return ['InvalidParameterValue', 'New size cannot be smaller than existing size'];
    }
    return undefined;
  }

  /** One call to moto with the caller's headers (moto reads the region from the signature, checks nothing). */
  private ask(headers: IncomingHttpHeaders, params: Record<string, string>): Promise<string> {
    const body = Buffer.from(new URLSearchParams(params).toString());
    return new Promise((resolve, reject) => {
      const { 'content-length': _length, ...rest } = headers;
      const up = request({ host: this.target.hostname, port: this.target.port, method: 'POST', path: '/', headers: { ...rest, host: this.target.host, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', 'content-length': body.length } }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => { resolve(Buffer.concat(chunks).toString('utf8')); });
      });
      up.on('error', reject);
      up.end(body);
    });
  }

  private answerOrForward(req: IncomingMessage, res: ServerResponse, body: Buffer, action: string, form: URLSearchParams): void {
    const own = this.answer?.(action, form);
    if (own) {
      void own.then((xml) => {
        if (xml === undefined) return this.forward(req, res, body);
        res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
        res.end(xml);
      }, (e: unknown) => {
        res.writeHead(500, { 'content-type': 'text/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InternalError</Code><Message>${(e as Error).message.replace(/[<&]/g, '')}</Message></Error></Errors><RequestID>own</RequestID></Response>`);
      });
      return;
    }
    this.forward(req, res, body);
  }

  private forward(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const up = request(
      { host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers: { ...req.headers, host: this.target.host } },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    up.end(body);
  }

  private pick(action: string, form: URLSearchParams): [number, string] | undefined {
    const f = this.faults;
    if (f.unauthenticated) return [401, 'AuthFailure'];
    if (action === 'RunInstances' && f.noCapacitySubnets?.has(form.get('SubnetId') ?? '')) return [500, 'InsufficientInstanceCapacity'];
    const roll = Math.random();
    if (roll < (f.throttleRate ?? 0)) return [503, 'RequestLimitExceeded'];
    if (roll < (f.throttleRate ?? 0) + (f.errorRate ?? 0)) return [500, 'InternalError'];
    return undefined;
  }

  count(action: string): number {
    return this.calls.filter((c) => c.action === action && !c.faulted).length;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => { r(); }) : r()));
  }
}
