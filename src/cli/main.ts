#!/usr/bin/env node
// One binary, sub-commands (DESIGN.md). Only `crds` exists so far; operator, gateway, agent and
// control-plane arrive with their issues.
import { stringify } from 'yaml';
import { allCRDs } from '../api/index.ts';

const usage = `usage: gitspaces <command>

commands:
  crds     print the CustomResourceDefinitions (kubectl apply -f -)
`;

const [command] = process.argv.slice(2);
switch (command) {
  case 'crds':
    process.stdout.write(allCRDs.map((c) => stringify(c, { lineWidth: 0 })).join('---\n'));
    break;
  case undefined:
  case 'help':
  case '--help':
    process.stdout.write(usage);
    break;
  default:
    process.stderr.write(`gitspaces: unknown command "${command}"\n${usage}`);
    process.exit(2);
}
