// The evaluator the rehearsal relies on, held to AWS's documented evaluation logic ("Policy
// evaluation logic", "IAM JSON policy elements"): node --test infra/iam/test/
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { evaluate } from '../evaluate.mjs'

const ACCOUNT = '123456789012'
const TABLE = `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/T`
const QUEUE = `arn:aws:sqs:us-east-1:${ACCOUNT}:internal`
const ROLE = `arn:aws:iam::${ACCOUNT}:role/FanoutRole`

function principal(statements, role = ROLE) {
  const name = role.split('/').pop()
  return {
    session: `arn:aws:sts::${ACCOUNT}:assumed-role/${name}/fn`,
    roleArn: role,
    policies: [{ name: 'inline', policy: { Version: '2012-10-17', Statement: statements } }]
  }
}

async function decide(statements, action, resource, { resourcePolicy, role } = {}) {
  const answer = await evaluate({
    accountId: ACCOUNT,
    principals: { fn: principal(statements, role) },
    resourcePolicies: resourcePolicy ? { [resource]: resourcePolicy } : {},
    calls: [{ id: 0, principal: 'fn', action, resource }]
  })
  return answer.results[0]
}

const allow = (Action, Resource) => ({ Effect: 'Allow', Action, Resource })

test('an Allow that names the action and the resource allows', async () => {
  const result = await decide([allow(['dynamodb:Query'], TABLE)], 'dynamodb:Query', TABLE)
  assert.equal(result.decision, 'Allowed')
  assert.deepEqual(result.allowedBy, [
    { policy: 'inline', statement: 0, actions: ['dynamodb:Query'], resources: [TABLE] }
  ])
})

test('no statement that applies: an implicit deny (the default)', async () => {
  assert.equal((await decide([allow(['dynamodb:GetItem'], TABLE)], 'dynamodb:Query', TABLE)).decision, 'ImplicitlyDenied')
  assert.equal((await decide([], 'dynamodb:Query', TABLE)).decision, 'ImplicitlyDenied')
})

test('a table grant does not reach its index: the index is its own resource', async () => {
  const result = await decide([allow(['dynamodb:Query'], TABLE)], 'dynamodb:Query', `${TABLE}/index/connections`)
  assert.equal(result.decision, 'ImplicitlyDenied')
})

test('an explicit Deny overrides any Allow', async () => {
  const statements = [allow('dynamodb:*', '*'), { Effect: 'Deny', Action: 'dynamodb:DeleteItem', Resource: TABLE }]
  assert.equal((await decide(statements, 'dynamodb:DeleteItem', TABLE)).decision, 'ExplicitlyDenied')
  assert.equal((await decide(statements, 'dynamodb:GetItem', TABLE)).decision, 'Allowed')
})

test('action names are case-insensitive and take wildcards; resources take * and ?', async () => {
  assert.equal((await decide([allow('DynamoDB:query', TABLE)], 'dynamodb:Query', TABLE)).decision, 'Allowed')
  assert.equal((await decide([allow('dynamodb:Get*', TABLE)], 'dynamodb:GetItem', TABLE)).decision, 'Allowed')
  assert.equal((await decide([allow('dynamodb:Get*', TABLE)], 'dynamodb:PutItem', TABLE)).decision, 'ImplicitlyDenied')
  const connections = `arn:aws:execute-api:us-east-1:${ACCOUNT}:abc123/ci/POST/@connections/*`
  const post = `arn:aws:execute-api:us-east-1:${ACCOUNT}:abc123/ci/POST/@connections/L0SM9cOFvHcCIhw=`
  const get = `arn:aws:execute-api:us-east-1:${ACCOUNT}:abc123/ci/GET/@connections/L0SM9cOFvHcCIhw=`
  assert.equal((await decide([allow('execute-api:ManageConnections', connections)], 'execute-api:ManageConnections', post)).decision, 'Allowed')
  assert.equal((await decide([allow('execute-api:ManageConnections', connections)], 'execute-api:ManageConnections', get)).decision, 'ImplicitlyDenied')
  assert.equal((await decide([allow('sqs:SendMessage', `arn:aws:sqs:us-east-1:${ACCOUNT}:intern?l`)], 'sqs:SendMessage', QUEUE)).decision, 'Allowed')
})

test('NotAction allows everything but the actions it names', async () => {
  const statements = [{ Effect: 'Allow', NotAction: 'dynamodb:DeleteItem', Resource: TABLE }]
  assert.equal((await decide(statements, 'dynamodb:GetItem', TABLE)).decision, 'Allowed')
  assert.equal((await decide(statements, 'dynamodb:DeleteItem', TABLE)).decision, 'ImplicitlyDenied')
})

test("a log group's ARN from Fn::GetAtt (with :*) covers the streams Lambda writes", async () => {
  const group = `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:/aws/lambda/ws-chat-ci-fanout`
  const stream = `${group}:log-stream:2026/01/01/[$LATEST]abc`
  const statements = [allow(['logs:CreateLogStream', 'logs:PutLogEvents'], `${group}:*`)]
  assert.equal((await decide(statements, 'logs:PutLogEvents', stream)).decision, 'Allowed')
  const other = `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:/aws/lambda/ws-chat-ci-default:log-stream:x`
  assert.equal((await decide(statements, 'logs:PutLogEvents', other)).decision, 'ImplicitlyDenied')
})

test("a queue policy's Deny to every principal but the named roles (ArnNotEquals aws:PrincipalArn)", async () => {
  const policy = {
    Version: '2012-10-17',
    Statement: [{
      Effect: 'Deny', Principal: '*', Action: 'sqs:SendMessage', Resource: QUEUE,
      Condition: { ArnNotEquals: { 'aws:PrincipalArn': [ROLE, `arn:aws:iam::${ACCOUNT}:role/DefaultRole`] } }
    }]
  }
  const grant = [allow('sqs:SendMessage', QUEUE)]
  assert.equal((await decide(grant, 'sqs:SendMessage', QUEUE, { resourcePolicy: policy })).decision, 'Allowed')
  const stranger = `arn:aws:iam::${ACCOUNT}:role/DisconnectRole`
  const denied = await decide(grant, 'sqs:SendMessage', QUEUE, { resourcePolicy: policy, role: stranger })
  assert.equal(denied.decision, 'ExplicitlyDenied')
  assert.deepEqual(denied.deniedBy.map((d) => d.policy), ['resource policy'])
  // The Deny covers SendMessage only: the excepted roles' other calls follow their own grants.
  assert.equal((await decide([allow('sqs:ReceiveMessage', QUEUE)], 'sqs:ReceiveMessage', QUEUE, { resourcePolicy: policy, role: stranger })).decision, 'Allowed')
})

test('conditions are evaluated: StringEquals on a request key', async () => {
  const statements = [{ Effect: 'Allow', Action: 'dynamodb:Query', Resource: TABLE, Condition: { StringEquals: { 'aws:PrincipalAccount': '999999999999' } } }]
  assert.equal((await decide(statements, 'dynamodb:Query', TABLE)).decision, 'ImplicitlyDenied')
  statements[0].Condition.StringEquals['aws:PrincipalAccount'] = ACCOUNT
  assert.equal((await decide(statements, 'dynamodb:Query', TABLE)).decision, 'Allowed')
})

test('an action no service has is an error, not an allow', async () => {
  const result = await decide([allow('*', '*')], 'dynamodb:NoSuchAction', TABLE)
  assert.equal(result.decision, 'Error')
})

test('several calls are decided independently, each with the statement that allowed it', async () => {
  const statements = [allow(['dynamodb:GetItem', 'dynamodb:Query'], TABLE), allow('dynamodb:Query', `${TABLE}/index/connections`)]
  const answer = await evaluate({
    accountId: ACCOUNT,
    principals: { fn: principal(statements) },
    resourcePolicies: {},
    calls: [
      { id: 0, principal: 'fn', action: 'dynamodb:Query', resource: `${TABLE}/index/connections` },
      { id: 1, principal: 'fn', action: 'dynamodb:GetItem', resource: TABLE },
      { id: 2, principal: 'nobody', action: 'dynamodb:GetItem', resource: TABLE }
    ]
  })
  assert.deepEqual(answer.results.map((r) => r.decision), ['Allowed', 'Allowed', 'Error'])
  assert.equal(answer.results[0].allowedBy[0].statement, 1)
  assert.deepEqual(answer.results[1].allowedBy[0].actions, ['dynamodb:GetItem'])
})
