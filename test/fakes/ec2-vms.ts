// moto's companion: moto keeps EC2's books but boots nothing, so this boots them. It follows
// moto's instances (one DescribeInstances every `intervalMs`) and keeps one container per
// instance in step (test/fakes/vm-host.ts): running → booted, stopped → shut down with its disk
// kept, terminated → removed. The container gets moto's private address on a Docker network
// whose subnet holds the VPC's, and boots with EC2's semantics: cloud-init runs the UserData on
// the instance's first boot only. GetConsoleOutput is answered from the container's console
// (through the fault proxy), as EC2 returns the serial console.
import { DescribeInstanceAttributeCommand, DescribeInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { Ec2FaultProxy } from './ec2-proxy.ts';
import type { ContainerVms, VmState } from './vm-host.ts';

export interface Ec2VmsOptions {
  /** A client straight to moto. */
  ec2: EC2Client;
  vms: ContainerVms;
  network: string;
  /** AMI id → Docker tag of the image that instance boots. */
  images: Record<string, string>;
  /** Container names are `<namePrefix>-<instance id>`. */
  namePrefix: string;
  intervalMs?: number;
}

export class Ec2Vms {
  private readonly o: Ec2VmsOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Per instance, its Docker actions in order. */
  private readonly machines = new Map<string, Promise<void>>();
  /** What each container was last brought to (so an action is issued once). */
  private readonly want = new Map<string, 'on' | 'off' | 'gone'>();
  readonly errors: string[] = [];

  constructor(o: Ec2VmsOptions) {
    this.o = o;
  }

  name(instanceId: string): string {
    return `${this.o.namePrefix}-${instanceId}`;
  }

  start(proxy?: Ec2FaultProxy): void {
    if (proxy) proxy.answer = (action, form) => (action === 'GetConsoleOutput' ? this.consoleXml(form.get('InstanceId') ?? '') : Promise.resolve(undefined));
    const tick = () => {
      this.running = this.sync().catch((e: unknown) => {
        this.errors.push((e as Error).message);
      }).finally(() => {
        if (this.timer) this.timer = setTimeout(tick, this.o.intervalMs ?? 300);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    await Promise.all(this.machines.values());
  }

  /** Removes every container this companion made (the instances' disks). */
  async removeAll(): Promise<void> {
    await this.stop();
    await this.o.vms.removeAll(`${this.o.namePrefix}-`);
  }

  private step(id: string, action: () => Promise<void>): void {
    const next = (this.machines.get(id) ?? Promise.resolve()).then(action).catch((e: unknown) => {
      this.errors.push(`${id}: ${(e as Error).message}`);
    });
    this.machines.set(id, next);
  }

  private async sync(): Promise<void> {
    const r = await this.o.ec2.send(new DescribeInstancesCommand({}));
    for (const res of r.Reservations ?? []) {
      for (const i of res.Instances ?? []) {
        const id = i.InstanceId ?? '';
        const state = i.State?.Name ?? '';
        const image = this.o.images[i.ImageId ?? ''];
        if (!id || !image) continue; // not an instance this test boots
        const want = state === 'pending' || state === 'running' ? 'on' : state === 'stopping' || state === 'stopped' ? 'off' : 'gone';
        if (this.want.get(id) === want) continue;
        const first = !this.want.has(id);
        this.want.set(id, want);
        const name = this.name(id);
        if (want === 'on') {
          this.step(id, async () => {
            if (first && (await this.o.vms.state(name)) === 'absent') {
              const attr = await this.o.ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: id, Attribute: 'userData' }));
              const userData = Buffer.from(attr.UserData?.Value ?? '', 'base64').toString('utf8');
              await this.o.vms.create({ name, image, network: this.o.network, ip: i.PrivateIpAddress ?? '', kind: 'ec2', instanceId: id, userData });
            }
            const s: VmState = await this.o.vms.state(name);
            if (s !== 'running') await this.o.vms.start(name);
          });
        } else if (want === 'off') {
          this.step(id, async () => {
            if ((await this.o.vms.state(name)) === 'running') await this.o.vms.stop(name);
          });
        } else {
          this.step(id, () => this.o.vms.remove(name));
        }
      }
    }
  }

  /** EC2's GetConsoleOutput answer, from the container's console (base64, as EC2 sends it). */
  private async consoleXml(id: string): Promise<string> {
    const text = await this.o.vms.console(this.name(id)).catch(() => ''); // not created yet: nothing printed
    return `<?xml version="1.0" encoding="UTF-8"?><GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>companion</requestId><instanceId>${id}</instanceId><timestamp>${new Date().toISOString()}</timestamp><output>${Buffer.from(text).toString('base64')}</output></GetConsoleOutputResponse>`;
  }
}
