// Kubernetes Events (events.k8s.io/v1) for transitions. Repeats of the same reason and note on the
// same object within ten minutes update one Event's series instead of creating new ones.
import { randomBytes } from 'node:crypto';
import { KubeError, type KubeClient, type KubeObject, type Resource } from './kube.ts';
import type { Logger } from './log.ts';

export const EVENTS: Resource = { group: 'events.k8s.io', version: 'v1', plural: 'events', namespaced: true };
const SERIES_WINDOW_MS = 10 * 60 * 1000;

interface Seen {
  name: string;
  namespace: string;
  count: number;
  first: number;
}

const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class EventRecorder {
  private readonly seen = new Map<string, Seen>();
  private warnedForbidden = false;

  private readonly client: KubeClient;
  private readonly controller: string;
  private readonly instance: string;
  private readonly log: Logger;

  /** Namespace for events about cluster-scoped objects. */
  private readonly clusterNamespace: string;

  constructor(client: KubeClient, controller: string, instance: string, log: Logger, clusterNamespace = 'default') {
    this.client = client;
    this.controller = controller;
    this.instance = instance;
    this.log = log;
    this.clusterNamespace = clusterNamespace;
  }

  /** Records an event; never throws (events are best effort). */
  async emit(obj: KubeObject & { apiVersion?: string; kind?: string }, type: 'Normal' | 'Warning', reason: string, note: string, action = reason): Promise<void> {
    const namespace = obj.metadata.namespace ?? this.clusterNamespace;
    const key = `${obj.metadata.uid ?? ''}|${reason}|${note}`;
    const now = new Date();
    try {
      const prev = this.seen.get(key);
      if (prev && now.getTime() - prev.first < SERIES_WINDOW_MS) {
        prev.count++;
        await this.client.patch(EVENTS, prev.namespace, prev.name, {
          series: { count: prev.count, lastObservedTime: microTime(now) },
        });
        return;
      }
      const name = `${obj.metadata.name ?? 'object'}.${randomBytes(8).toString('hex')}`;
      await this.client.create(EVENTS, {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name, namespace },
        eventTime: microTime(now),
        reportingController: this.controller,
        reportingInstance: this.instance,
        action,
        reason,
        note: note.slice(0, 1024),
        type,
        regarding: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.metadata.name,
          namespace: obj.metadata.namespace,
          uid: obj.metadata.uid,
          resourceVersion: obj.metadata.resourceVersion,
        },
      } as KubeObject);
      this.seen.set(key, { name, namespace, count: 1, first: now.getTime() });
      if (this.seen.size > 10_000) this.seen.delete(this.seen.keys().next().value ?? '');
    } catch (e) {
      // Best effort, but a refusal is a misconfiguration (RBAC) that someone should see, once.
      if (e instanceof KubeError && e.status === 403 && !this.warnedForbidden) {
        this.warnedForbidden = true;
        this.log.warn('events are forbidden: nothing will be recorded', { reason, error: e });
      } else {
        this.log.debug('event not recorded', { reason, error: e });
      }
    }
  }
}
