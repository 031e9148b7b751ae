// One long-lived evaluator for local mode: reads one JSON request per line on stdin, answers one JSON line on
// stdout. The evaluation is @cloud-copilot/iam-simulate's (a development dependency, AGPL-3.0: it runs beside the
// tests and is never bundled into the Lambda asset or the CDK app). Requests:
//   {"id": 1, "simulation": {...}}   -> {"id": 1, "result": "Allowed"|"ImplicitlyDenied"|"ExplicitlyDenied",
//                                        "denials": [...], "grants": [...]}  or {"id": 1, "error": "..."}
'use strict'
const path = require('path')
const readline = require('readline')
const root = process.env.BATCH_PIPELINE_NODE_MODULES || path.resolve(__dirname, '..', '..', '..')
const entry = require.resolve('@cloud-copilot/iam-simulate', { paths: [root] })
const { runSimulation, getDenialReasons, getGrantReasons } = require(entry)
// iam-simulate 0.1.x recognises variable context keys only in the `prefix/name` form (aws:RequestTag/x); the
// Service Authorization Reference also has `kms:EncryptionContext:${EncryptionContextKey}`, which it drops from
// the request as "ignored". For those, after the validated run, evaluate again with the same engine and the whole
// context (its documented unvalidated entry point, core engine below), so such a condition is really tested.
const engineDir = path.dirname(entry)
const { authorize } = require(path.join(engineDir, 'core_engine', 'CoreSimulatorEngine.js'))
const { loadPolicy } = require(require.resolve('@cloud-copilot/iam-policy', { paths: [engineDir] }))
const { AwsRequestImpl } = require(path.join(engineDir, 'request', 'request.js'))
const { RequestContextImpl } = require(path.join(engineDir, 'requestContext.js'))
const { DiscoveryContextKeyConstraints } = require(path.join(engineDir, 'context_keys', 'discoveryContextKeyConstraints.js'))
const COLON_VARIABLE_KEYS = /^kms:encryptioncontext:.+/i

function analyseWithWholeContext(simulation) {
  const request = new AwsRequestImpl(simulation.request.principal, simulation.request.resource,
    simulation.request.action, new RequestContextImpl(simulation.request.contextVariables))
  return authorize({
    request,
    sessionPolicy: undefined,
    identityPolicies: simulation.identityPolicies.map((p) => loadPolicy(p.policy, { name: p.name })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: simulation.resourcePolicy ? loadPolicy(simulation.resourcePolicy, { name: 'resource' }) : undefined,
    permissionBoundaries: undefined,
    vpcEndpointPolicies: undefined,
    simulationParameters: { simulationMode: 'Strict', discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([]) },
    serviceSettings: { s3: {} }
  })
}

async function answer(request) {
  const response = await runSimulation(request.simulation, { simulationMode: 'Strict' })
  if (response.resultType === 'error') {
    return { id: request.id, error: response.errors.message, details: response.errors }
  }
  const result = response.resultType === 'single' ? response.result : response.results[0]
  let analysis = result.analysis
  let overall = response.overallResult
  let ignored = result.ignoredContextKeys || []
  if (ignored.some((key) => COLON_VARIABLE_KEYS.test(key))) {
    const unknown = ignored.filter((key) => !COLON_VARIABLE_KEYS.test(key))
    const context = Object.fromEntries(Object.entries(request.simulation.request.contextVariables)
      .filter(([key]) => !unknown.includes(key)))
    analysis = analyseWithWholeContext({ ...request.simulation, request: { ...request.simulation.request, contextVariables: context } })
    overall = analysis.result
    ignored = unknown
  }
  return {
    id: request.id,
    result: overall,
    denials: overall === 'Allowed' ? [] : getDenialReasons(analysis),
    grants: overall === 'Allowed' ? getGrantReasons(analysis) : [],
    ignoredContextKeys: ignored
  }
}

const lines = readline.createInterface({ input: process.stdin })
lines.on('line', async (line) => {
  let request
  try {
    request = JSON.parse(line)
    process.stdout.write(JSON.stringify(await answer(request)) + '\n')
  } catch (error) {
    process.stdout.write(JSON.stringify({ id: request && request.id, error: String(error && error.stack || error) }) + '\n')
  }
})
