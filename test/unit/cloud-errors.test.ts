// Cloud errors classified the way the runner needs them: what to retry, what to show, which field.
import { expect } from 'chai';
import { ec2Error, CapacityError as Ec2Capacity } from '../../src/providers/aws/errors.ts';
import { callError, CapacityError as GceCapacity, operationError } from '../../src/providers/gcp/errors.ts';
import { gceLabelFilter, gceLabels, ourLabels } from '../../src/providers/gcp/labels.ts';
import { LABELS } from '../../src/api/index.ts';

describe('EC2 error classification', () => {
  const e = (Code: string, message = 'm', status = 400) => Object.assign(new Error(message), { name: Code, Code, $metadata: { httpStatusCode: status } });
  const rows: [string, string, string?][] = [
    ['RequestLimitExceeded', 'Throttled'],
    ['InsufficientInstanceCapacity', 'QuotaExceeded'],
    ['InstanceLimitExceeded', 'QuotaExceeded'],
    ['VcpuLimitExceeded', 'QuotaExceeded'],
    ['InvalidAMIID.NotFound', 'InvalidConfig', 'spec.image'],
    ['InvalidAMIID.Malformed', 'InvalidConfig', 'spec.image'],
    ['AuthFailure', 'Unauthenticated', 'spec.provider.aws.credentialsSecretRef'],
    ['UnauthorizedOperation', 'Unauthenticated', 'spec.provider.aws.credentialsSecretRef'],
    ['NoSuchEntity', 'InvalidConfig', 'spec.provider.aws.instanceProfile'],
    ['InvalidInstanceID.NotFound', 'NotFound'],
    ['InternalError', 'Transient'],
  ];
  for (const [code, kind, field] of rows) {
    it(`${code} → ${kind}${field ? ` (${field})` : ''}`, () => {
      const err = ec2Error(e(code), 'call');
      expect(err.code).to.equal(kind);
      if (field) expect(err.field).to.equal(field);
    });
  }
  it('marks capacity errors for zone fallback', () => {
    expect(ec2Error(e('InsufficientInstanceCapacity'), 'x')).to.be.instanceOf(Ec2Capacity);
    expect(ec2Error(e('InsufficientFreeAddressesInSubnet'), 'x'), 'a full subnet: next zone').to.be.instanceOf(Ec2Capacity);
    expect(ec2Error(e('InstanceLimitExceeded'), 'x')).to.not.be.instanceOf(Ec2Capacity);
  });
});

describe('GCE error classification and labels', () => {
  it('classifies call errors by HTTP status and reason', () => {
    const g = (httpStatusCode: number, message: string) => Object.assign(new Error(message), { httpStatusCode });
    expect(callError(g(429, 'Too Many Requests'), 'x').code).to.equal('Throttled');
    expect(callError(g(403, 'Rate Limit Exceeded'), 'x').code).to.equal('Throttled');
    expect(callError(g(403, 'Permission denied on resource project p'), 'x').field).to.equal('spec.provider.gcp.credentialsSecretRef');
    expect(callError(g(403, 'Permission denied on resource project p'), 'x').code).to.equal('Unauthenticated');
    expect(callError(g(401, 'Request had invalid authentication credentials'), 'x').code).to.equal('Unauthenticated');
    expect(callError(g(404, 'not found'), 'x').code).to.equal('NotFound');
    expect(callError(g(503, 'Backend Error'), 'x').code).to.equal('Transient');
  });

  it('classifies operation errors: capacity (next zone), quota, other', () => {
    expect(operationError([{ code: 'ZONE_RESOURCE_POOL_EXHAUSTED', message: 'm' }])).to.be.instanceOf(GceCapacity);
    expect(operationError([{ code: 'QUOTA_EXCEEDED', message: 'm' }]).code).to.equal('QuotaExceeded');
    expect(operationError([{ code: 'QUOTA_EXCEEDED', message: 'm' }])).to.not.be.instanceOf(GceCapacity);
    expect(operationError([{ code: 'SOMETHING', message: 'm' }]).code).to.equal('Transient');
  });

  it('maps our label keys to GCE form and back', () => {
    const ours = { [LABELS.gitspaceUID]: 'Abc-1', [LABELS.managedBy]: 'gitspaces-operator' };
    const gce = gceLabels(ours);
    expect(gce).to.deep.equal({ 'gitspaces-dev_gitspace-uid': 'abc-1', 'app-kubernetes-io_managed-by': 'gitspaces-operator' });
    expect(ourLabels(gce, Object.values(LABELS))[LABELS.gitspaceUID]).to.equal('abc-1');
    expect(gceLabelFilter({ [LABELS.infra]: 'gcp' })).to.equal('labels.gitspaces-dev_infra = "gcp"');
  });
});
