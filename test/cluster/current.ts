// The cluster started by the mocha global setup, for tests to use.
import type { TestCluster } from './cluster.ts';

let current: TestCluster | undefined;

export function setCluster(c: TestCluster): void {
  current = c;
}

export function testCluster(): TestCluster {
  if (!current) throw new Error('no test cluster: run integration tests with --require test/cluster/mocha-hooks.ts');
  return current;
}
