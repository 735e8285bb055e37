// Pure runtime pieces: work queue semantics, backoff, token bucket, conditions, JSON equality.
import { expect } from 'chai';
import { backoffDelay, TokenBucket } from '../../src/runtime/backoff.ts';
import { setCondition } from '../../src/runtime/conditions.ts';
import { jsonEqual } from '../../src/runtime/objects.ts';
import { matchesSelector, type LabelSelector } from '../../src/runtime/selector.ts';
import { WorkQueue } from '../../src/runtime/workqueue.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('WorkQueue', () => {
  it('keeps a waiting key once however often it is added', async () => {
    const q = new WorkQueue({ name: 't' });
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('a');
    expect(q.length).to.equal(2);
    expect(await q.get()).to.equal('a');
    expect(await q.get()).to.equal('b');
    expect(q.length).to.equal(0);
  });

  it('never hands a key to two workers: an add during processing waits for done', async () => {
    const q = new WorkQueue({ name: 't' });
    q.add('a');
    const k = await q.get();
    q.add('a'); // while processing
    expect(q.length).to.equal(0);
    let second: string | undefined;
    void q.get().then((x) => (second = x));
    await sleep(5);
    expect(second).to.equal(undefined);
    q.done(k!);
    await sleep(1);
    expect(second).to.equal('a');
  });

  it('backs off failed keys exponentially, per key, and forget resets it', () => {
    const q = new WorkQueue({ name: 't', backoff: { baseMs: 10, maxMs: 1000, jitter: 0 }, rate: { perSecond: 1e6, burst: 1e6 } });
    const delays = [q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('b')];
    expect(delays).to.deep.equal([10, 20, 40, 10]);
    q.forget('a');
    expect(q.addRateLimited('a')).to.equal(10);
    q.shutdown();
  });

  it('caps the backoff and respects the overall rate limit', () => {
    const q = new WorkQueue({ name: 't', backoff: { baseMs: 10, maxMs: 50, jitter: 0 }, rate: { perSecond: 10, burst: 2 } });
    const d = Array.from({ length: 6 }, (_, i) => q.addRateLimited(`k${i % 2 ? 'x' : 'y'}`));
    expect(Math.max(...d.slice(0, 2))).to.be.at.most(20);
    // after the burst of 2, each further token costs 100 ms at 10/s
    expect(d[2]).to.be.at.least(90);
    expect(d[5]).to.be.at.least(390);
    q.shutdown();
  });

  it('addAfter delivers later, and an earlier schedule for the same key wins', async () => {
    const q = new WorkQueue({ name: 't' });
    q.addAfter('a', 200);
    q.addAfter('a', 20);
    q.addAfter('a', 500);
    const t0 = Date.now();
    expect(await q.get()).to.equal('a');
    expect(Date.now() - t0).to.be.within(15, 150);
    q.done('a');
    await sleep(250);
    expect(q.length).to.equal(0);
  });

  it('shutdown releases waiting workers and drains in-flight work', async () => {
    const q = new WorkQueue({ name: 't' });
    q.add('a');
    const k = await q.get();
    const waiting = q.get();
    q.shutdown();
    expect(await waiting).to.equal(undefined);
    let drained = false;
    void q.drained().then(() => (drained = true));
    await sleep(5);
    expect(drained).to.equal(false);
    q.done(k!);
    await sleep(1);
    expect(drained).to.equal(true);
  });
});

describe('backoff and token bucket', () => {
  it('grows exponentially with bounded jitter and never exceeds the cap', () => {
    for (const r of [0, 0.5, 0.999]) {
      const o = { baseMs: 100, maxMs: 5000, jitter: 0.2, random: () => r };
      expect(backoffDelay(0, o)).to.be.within(80, 120);
      expect(backoffDelay(3, o)).to.be.within(640, 960);
      expect(backoffDelay(30, o)).to.be.within(4000, 5000);
    }
  });

  it('hands out burst tokens at once, then paces, and drains on throttling', () => {
    let now = 0;
    const b = new TokenBucket(2, 3, () => now);
    expect([b.reserve(), b.reserve(), b.reserve()]).to.deep.equal([0, 0, 0]);
    expect(b.reserve()).to.equal(500);
    now = 5000;
    expect(b.reserve()).to.equal(0);
    b.drain();
    expect(b.reserve()).to.be.greaterThan(0);
  });
});

describe('conditions', () => {
  it('moves lastTransitionTime only when status changes and records the generation', () => {
    const t1 = new Date('2026-01-01T00:00:00Z');
    const t2 = new Date('2026-01-01T01:00:00Z');
    let c = setCondition([], { type: 'Ready', status: 'False', reason: 'Provisioning', message: 'a' }, 1, t1);
    c = setCondition(c, { type: 'Ready', status: 'False', reason: 'Starting', message: 'b' }, 2, t2);
    expect(c).to.deep.equal([{ type: 'Ready', status: 'False', reason: 'Starting', message: 'b', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 2 }]);
    c = setCondition(c, { type: 'Ready', status: 'True', reason: 'Running', message: '' }, 2, t2);
    expect(c[0]!.lastTransitionTime).to.equal('2026-01-01T01:00:00Z');
  });
});

describe('jsonEqual', () => {
  it('ignores key order and undefined keys, not values', () => {
    expect(jsonEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 })).to.equal(true);
    expect(jsonEqual({ a: 1, x: undefined }, { a: 1 })).to.equal(true);
    expect(jsonEqual({ a: [1, 2] }, { a: [2, 1] })).to.equal(false);
    expect(jsonEqual({ a: null }, { a: 0 })).to.equal(false);
  });
});

describe('label selectors', () => {
  const team = { team: 'a', 'gitspaces.dev/enabled': 'true' };
  const cases: [string, LabelSelector, Record<string, string> | undefined, boolean][] = [
    ['empty selector: everything', {}, undefined, true],
    ['matchLabels hit', { matchLabels: { team: 'a' } }, team, true],
    ['matchLabels miss', { matchLabels: { team: 'b' } }, team, false],
    ['matchLabels on no labels', { matchLabels: { team: 'a' } }, undefined, false],
    ['In', { matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] }, team, true],
    ['In, key absent', { matchExpressions: [{ key: 'x', operator: 'In', values: ['a'] }] }, team, false],
    ['NotIn', { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['a'] }] }, team, false],
    ['NotIn, key absent', { matchExpressions: [{ key: 'x', operator: 'NotIn', values: ['a'] }] }, team, true],
    ['Exists', { matchExpressions: [{ key: 'gitspaces.dev/enabled', operator: 'Exists' }] }, team, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] }, team, false],
    ['all terms must hold', { matchLabels: { team: 'a' }, matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['a'] }] }, team, false],
  ];
  for (const [what, selector, labels, want] of cases) {
    it(what, () => {
      expect(matchesSelector(selector, labels)).to.equal(want);
    });
  }
});
