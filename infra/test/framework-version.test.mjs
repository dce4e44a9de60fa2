// serverless.yml's `frameworkVersion` is a semver range every tool that runs the file checks its
// own version against before anything else, and stops on a mismatch ("does not satisfy the
// frameworkVersion"). The file must run on the pinned osls (what scripts/test and scripts/deploy
// use) and on Serverless v4, the documented alternative, which cannot run here (its npm package
// only downloads a binary): this test applies osls's own check to both.
//
//   node --test test/framework-version.test.mjs      (from infra/, after npm ci)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import yaml from 'js-yaml';
import semver from 'semver';

const here = new URL('../', import.meta.url);
const read = (path) => readFileSync(new URL(path, here), 'utf8');

// CloudFormation's short forms (!Ref, !Sub, !GetAtt, ...) on scalars, lists and maps: kept as
// plain values, so the file parses as YAML whatever tags it uses.
const cloudFormationTags = ['scalar', 'sequence', 'mapping'].map(
  (kind) => new yaml.Type('!', { kind, multi: true, construct: (data) => data }),
);
const config = yaml.load(read('serverless.yml'), {
  schema: yaml.DEFAULT_SCHEMA.extend(cloudFormationTags),
});
const range = config.frameworkVersion;
const packageJson = JSON.parse(read('package.json'));
const osls = JSON.parse(read('node_modules/osls/package.json'));

// osls's check (lib/classes/service.js): the range must be valid, and the coerced version satisfy it.
const accepts = (version) => semver.satisfies(semver.coerce(version).raw, range);

test('frameworkVersion is a valid semver range', () => {
  assert.equal(typeof range, 'string', `frameworkVersion is ${JSON.stringify(range)}: quote it`);
  assert.ok(semver.validRange(range), `frameworkVersion ${JSON.stringify(range)} is not a semver range`);
});

test('osls is pinned exactly, and the installed one is the pinned one', () => {
  const pin = packageJson.devDependencies.osls;
  assert.ok(semver.valid(pin), `infra/package.json pins osls as ${JSON.stringify(pin)}, not one exact version`);
  assert.equal(osls.version, pin, 'node_modules holds another osls than package.json pins: run npm ci');
});

test('the pinned osls accepts frameworkVersion', () => {
  assert.ok(accepts(osls.version), `osls ${osls.version} does not satisfy frameworkVersion ${JSON.stringify(range)}`);
});

test('Serverless v4, from its first to a recent release, accepts frameworkVersion', () => {
  for (const version of ['4.0.0', '4.1.0', '4.17.2', '4.43.0']) {
    assert.ok(accepts(version), `Serverless ${version} does not satisfy frameworkVersion ${JSON.stringify(range)}`);
  }
});

test("infra/package.json's Node.js requirement is osls's", () => {
  // docs/deploying.md, "Prerequisites", repeats it; npm warns when a Node.js outside it runs.
  assert.equal(packageJson.engines?.node, osls.engines.node);
});
