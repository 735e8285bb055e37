// `npm run cluster`: start the test cluster for manual use and keep it until Ctrl-C.
// `--json` prints one JSON line (kubeconfig, dir, pids) instead of the human text (used by tests).
import { binDir, TestCluster } from './cluster.ts';

const json = process.argv.includes('--json');
const cluster = await TestCluster.start({ verbose: !json, users: [{ name: 'alice', groups: ['developers'] }] });
if (json) {
  console.log(JSON.stringify({ kubeconfig: cluster.kubeconfigPath, dir: cluster.dir, server: cluster.server, pids: cluster.pids() }));
} else {
  console.log(`
Test cluster is up: ${cluster.server}
  export KUBECONFIG=${cluster.kubeconfigPath}
  kubectl get gitspaces,gitspaceinfras
kubectl of the same version: ${binDir()}/kubectl
Token user "alice" (group developers): ${cluster.user('alice').token}
Ctrl-C stops it and removes ${cluster.dir}.`);
}
// Stay up until a signal; the exit hooks in cluster.ts tear everything down.
setInterval(() => undefined, 1 << 30);
