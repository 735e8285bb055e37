// Mocha global fixtures: one real control plane for the whole integration run.
import { TestCluster } from './cluster.ts';
import { setCluster } from './current.ts';

let cluster: TestCluster | undefined;

export async function mochaGlobalSetup(): Promise<void> {
  const t0 = Date.now();
  cluster = await TestCluster.start({
    verbose: Boolean(process.env.GITSPACES_TEST_VERBOSE),
    users: [
      { name: 'alice', groups: ['developers'] },
      { name: 'mallory', groups: [] },
      // The admission policy's test: a second developer, and a member of its admin group.
      { name: 'bob', groups: ['developers'] },
      { name: 'platform-admin', groups: ['gitspaces-admins'] },
    ],
  });
  setCluster(cluster);
  process.env.KUBECONFIG = cluster.kubeconfigPath;
  console.log(`  test cluster ready in ${((Date.now() - t0) / 1000).toFixed(1)} s at ${cluster.server}`);
}

export async function mochaGlobalTeardown(): Promise<void> {
  await cluster?.stop();
}
