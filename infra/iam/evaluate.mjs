// The rehearsal's IAM evaluation: every call a function made (and what the Lambda service calls
// with its role), decided by @cloud-copilot/iam-simulate against the role's identity policies
// and, where one applies, the resource's policy (an SQS queue policy), as AWS decides it.
//
//   node infra/iam/evaluate.mjs < request.json > decisions.json
//
// request: {
//   "accountId": "123456789012",
//   "principals": {"fanout": {"session": "arn:aws:sts::...:assumed-role/R/fn",
//                             "roleArn": "arn:aws:iam::...:role/R",
//                             "policies": [{"name": "fanout", "policy": {...}}]}},
//   "resourcePolicies": {"arn:aws:sqs:...:queue": {...}},
//   "calls": [{"id": 0, "principal": "fanout", "action": "dynamodb:Query", "resource": "arn:..."}]
// }
// answer: {"results": [{"id": 0, "decision": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied"
//   | "Error", "error": "...", "allowedBy": [{"policy", "statement", "actions", "resources"}],
//   "deniedBy": [{"policy", "statement"}]}]}
// `statement` is the statement's index in its policy's Statement array (0-based), "actions" and
// "resources" the patterns of it that matched the call.
import { pathToFileURL } from 'node:url'
import { runSimulation } from '@cloud-copilot/iam-simulate'

function asList(value) {
  return value === undefined ? [] : Array.isArray(value) ? value : [value]
}

function statementIndex(policy, statement) {
  const text = JSON.stringify(statement)
  return asList(policy.Statement).findIndex((s) => JSON.stringify(s) === text)
}

function matched(explainItems) {
  return asList(explainItems)
    .filter((item) => item.matches)
    .map((item) => item.action ?? item.resource)
}

function statementsOf(analysis, policies, kind) {
  const out = []
  for (const s of asList(analysis?.[kind])) {
    const policy = policies.find((p) => p.name === s.policyId)?.policy
    out.push({
      policy: s.policyId ?? null,
      statement: policy ? statementIndex(policy, s.statement) : null,
      actions: matched(s.explain?.actions),
      resources: matched(s.explain?.resources)
    })
  }
  return out
}

export async function evaluate(request) {
  const results = []
  for (const call of request.calls) {
    const principal = request.principals[call.principal]
    if (!principal) {
      results.push({ id: call.id, decision: 'Error', error: `no role for ${call.principal}` })
      continue
    }
    const simulation = {
      identityPolicies: principal.policies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: request.resourcePolicies?.[call.resource],
      request: {
        action: call.action,
        principal: principal.session,
        resource: { resource: call.resource, accountId: request.accountId },
        // iam-simulate does not derive aws:PrincipalArn from an assumed-role session: it is the role.
        contextVariables: { 'aws:PrincipalArn': principal.roleArn, 'aws:PrincipalAccount': request.accountId }
      }
    }
    let answer
    try {
      answer = await runSimulation(simulation, {})
    } catch (e) {
      results.push({ id: call.id, decision: 'Error', error: String(e?.message ?? e) })
      continue
    }
    if (answer.resultType === 'error') {
      results.push({ id: call.id, decision: 'Error', error: JSON.stringify(answer.errors) })
      continue
    }
    const analysis = answer.resultType === 'single' ? answer.result.analysis : answer.results[0]?.analysis
    results.push({
      id: call.id,
      decision: answer.overallResult,
      allowedBy: statementsOf(analysis?.identityAnalysis, principal.policies, 'allowStatements'),
      deniedBy: [
        ...statementsOf(analysis?.identityAnalysis, principal.policies, 'denyStatements'),
        ...statementsOf(analysis?.resourceAnalysis, [], 'denyStatements').map((s) => ({ ...s, policy: 'resource policy' }))
      ]
    })
  }
  return { results }
}

async function main() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  const request = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  process.stdout.write(JSON.stringify(await evaluate(request)) + '\n')
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(`evaluate.mjs: ${e?.stack ?? e}`)
    process.exit(1)
  })
}
